"""The collector's ASGI app (Starlette, served by :mod:`analyzer.collector.h11server`).

Routes: ``POST /v1/batches`` (signed batch ingest, acknowledged only after commit),
``POST /v1/probes/{id}/heartbeat``, ``GET /v1/probes/{id}/inventory``, ``GET /healthz``,
``GET /openapi.json`` and ``GET /metrics`` (Prometheus). Blocking store work runs on one
:class:`~analyzer.collector.storethread.StoreThread`, a call at a time: one writer.

``POST /v1/batches`` is the hot path: it is served as a plain ASGI callable (no Starlette
request, response or middleware objects; answers encoded with orjson), in front of the
Starlette router that serves everything else, with the same answers, bodies and metrics.
"""

from __future__ import annotations

import gzip
import logging
import re
import sqlite3
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import aclosing
from typing import Any

import orjson
import trio
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, gzip_accepted
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from analyzer.collector.auth import Authenticator
from analyzer.collector.h11server import ServerStats
from analyzer.collector.inventory import signed_plan
from analyzer.collector.openapi import openapi_document
from analyzer.collector.storethread import StoreThread
from analyzer.store.base import Store, WriteReceipt
from analyzer.wire_columns import decode_body
from ixmeter.core import __version__, heartbeat
from ixmeter.core import plan as plan_format
from ixmeter.core.errors import RecordError
from ixmeter.core.wire import AuthError, SignedHead

DEFAULT_MAX_BODY = 8 * 1024 * 1024
BATCHES_PATH = "/v1/batches"
log = logging.getLogger("ixmeter.collector")

AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Problem(Exception):
    """An HTTP error answer: status, JSON body, and the metric reason it is counted under."""

    def __init__(self, status: int, body: dict[str, Any], reason: str) -> None:
        super().__init__(body.get("error"))
        self.status, self.body, self.reason = status, body, reason


class Metrics:
    """The collector's Prometheus metrics, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("ixmeter_collector_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=r)
        self.auth_failures = Counter("ixmeter_collector_auth_failures",
                                     "rejected authentications by reason", ["reason"],
                                     registry=r)
        self.rejected = Counter("ixmeter_collector_rejected",
                                "requests rejected other than by authentication", ["reason"],
                                registry=r)
        self.batches = Counter("ixmeter_collector_batches", "batches by outcome", ["outcome"],
                               registry=r)
        self.results = Counter("ixmeter_collector_results", "results accepted and committed",
                               registry=r)
        self.ingest_seconds = Histogram("ixmeter_collector_ingest_seconds",
                                        "decode + commit time per batch", registry=r)
        self.probes = ProbeReports()
        r.register(self.probes)
        self._children: dict[tuple[Any, ...], Any] = {}
        self._server: _ServerMetrics | None = None

    def child(self, metric: Counter, *labels: str) -> Any:
        """``metric.labels(*labels)``, bound once and kept: ``labels()`` validates and locks on
        every call, which the hot path pays per request. Created on first use, as before."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def watch_server(self, stats: ServerStats) -> None:
        """Show the HTTP server's connection counts (read when ``/metrics`` is rendered)."""
        if self._server is not None:
            self.registry.unregister(self._server)
        self._server = _ServerMetrics(stats)
        self.registry.register(self._server)

    def render(self, accept: str, accept_encoding: str) -> tuple[bytes, dict[str, str]]:
        """The exposition (Prometheus text, or OpenMetrics if ``accept`` asks for it), gzipped
        if ``accept_encoding`` allows, and its headers: what ``prometheus_client`` serves.
        Blocking, and as long as the metrics: called off the event loop."""
        encoder, content_type = choose_encoder(accept)
        output, headers = encoder(self.registry), {"content-type": content_type}
        if gzip_accepted(accept_encoding):
            output, headers["content-encoding"] = gzip.compress(output), "gzip"
        return output, headers


class _ServerMetrics:
    """A prometheus collector over :class:`ServerStats`."""

    def __init__(self, stats: ServerStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        yield GaugeMetricFamily("ixmeter_collector_connections", "HTTP connections open",
                                value=s.open)
        yield CounterMetricFamily("ixmeter_collector_connections_refused",
                                  "connections answered 503 past --max-connections",
                                  value=s.refused)
        yield CounterMetricFamily("ixmeter_collector_accept_errors",
                                  "accept() failures for want of descriptors or memory",
                                  value=s.accept_errors)
        yield CounterMetricFamily("ixmeter_collector_timeouts",
                                  "request heads and bodies too slow, answered 408",
                                  value=s.timeouts)


class _FoldMetrics:
    """A prometheus collector over the store's fold work (``Writer.fold_work``): batches this
    collector folded from the rollups it held, and from stored raw results (what no live
    collector held: another collector's crash, or this one's restart)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        work = getattr(self.store, "fold_work", None)
        if work is None:
            return
        family = CounterMetricFamily("ixmeter_collector_folded_batches",
                                     "batches whose rollups this collector folded, by source",
                                     labels=["source"])
        for source in ("memory", "raw"):
            family.add_metric([source], work[source])
        yield family


class Collector:
    """Holds the store, keys, inventory and metrics; :meth:`app` is the ASGI application."""

    def __init__(self, store: Store, auth: Authenticator, inventory: Any = None, *,
                 max_body: int = DEFAULT_MAX_BODY, clock: Callable[[], float] = time.time) -> None:
        self.store, self.auth, self.inventory = store, auth, inventory
        self.max_body, self.clock = max_body, clock
        self.metrics = Metrics()
        self.metrics.registry.register(_FoldMetrics(store))
        self._render_limiter: trio.CapacityLimiter | None = None
        # when quiet, fold the rollups the store holds (readers need not fold them)
        self.store_thread = StoreThread(idle=store.fold_pending)

    def app(self) -> AsgiApp:
        routes = [
            Route(BATCHES_PATH, _AsgiApp(self.batches_app), methods=["POST"]),
            Route("/v1/probes/{probe_id}/heartbeat", self._wrap("heartbeat", self.heartbeat),
                  methods=["POST"]),
            Route("/v1/probes/{probe_id}/inventory", self._wrap("inventory", self.get_inventory),
                  methods=["GET"]),
            Route("/healthz", self._wrap("healthz", self.healthz), methods=["GET"]),
            Route("/openapi.json", self._wrap("openapi", self.openapi), methods=["GET"]),
            Route("/metrics", self._wrap("metrics", self.metrics_page), methods=["GET"]),
        ]
        return _BatchesFirst(self.batches_app, Starlette(routes=routes))

    def _wrap(self, name: str, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except Problem as p:
                self._count_problem(p)
                response = JSONResponse(p.body, status_code=p.status)
            self.metrics.child(self.metrics.requests, name, str(response.status_code)).inc()
            return response
        return endpoint

    def _count_problem(self, p: Problem) -> None:
        if p.status in (401, 403) and p.reason != "wrong_probe":
            self.metrics.child(self.metrics.auth_failures, p.reason).inc()
        else:
            self.metrics.child(self.metrics.rejected, p.reason).inc()

    # -- helpers ---------------------------------------------------------------------------
    async def _read_body(self, request: Request, limit: int | None = None) -> bytes:
        async with aclosing(request.stream()) as stream:
            return await self._body(request.headers.get("content-length"), stream, limit)

    async def _body(self, declared: str | None, chunks: AsyncIterator[bytes],
                    limit: int | None = None) -> bytes:
        """The body, refused with 413 as soon as it exceeds ``limit`` (default ``max_body``),
        declared or read."""
        limit = self.max_body if limit is None else limit
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit)
        parts, size = [], 0
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit)
            parts.append(chunk)
        return b"".join(parts)

    def _authenticate(self, request: Request, url_probe: str | None = None) -> SignedHead:
        return self._check_head(request_headers(request.scope["headers"]), request.method,
                                request.url.path, url_probe)

    def _check_head(self, headers: Mapping[str, str], method: str, path: str,
                    url_probe: str | None = None) -> SignedHead:
        """401 (403 for ``wrong_probe``) unless the head authenticates: before the body is
        read, so a client without a key is answered at once and the body never read."""
        try:
            return self.auth.authenticate_head(headers, method, path, self.clock(), url_probe)
        except AuthError as exc:
            raise _auth_problem(exc) from None

    def _check_body(self, head: SignedHead, body: bytes) -> None:
        try:
            self.auth.check_body(head, body)
        except AuthError as exc:
            raise _auth_problem(exc) from None

    async def in_store_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` (blocking store work) on the store thread, after the calls before it."""
        return await self.store_thread.run(fn, *args)

    # -- routes ----------------------------------------------------------------------------
    async def batches_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /v1/batches`` as a plain ASGI callable; answers as the Starlette routes do
        (JSON bodies, a 500 in plain text for an unexpected error) and counts the same."""
        try:
            status, answer = 200, await self.post_batch(scope, receive)
        except Problem as p:
            self._count_problem(p)
            status, answer = p.status, p.body
        except ClientGone:
            return  # nobody to answer; not counted, as before
        except Exception:
            log.exception("POST %s failed", BATCHES_PATH)
            await _send_answer(send, 500, b"Internal Server Error", b"text/plain; charset=utf-8")
            return
        self.metrics.child(self.metrics.requests, "batches", str(status)).inc()
        await _send_answer(send, status, json_bytes(answer), b"application/json")

    async def post_batch(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        headers = request_headers(scope["headers"])
        head = self._check_head(headers, scope["method"], scope["path"])
        async with aclosing(_body_chunks(receive)) as chunks:
            body = await self._body(headers.get("content-length"), chunks)
        self._check_body(head, body)
        probe_id = head.probe_id
        started = time.perf_counter()
        receipt: WriteReceipt = await self.in_store_thread(self._ingest, probe_id, body)
        self.metrics.ingest_seconds.observe(time.perf_counter() - started)
        self.metrics.child(self.metrics.batches,
                           "duplicate" if receipt.duplicate else "accepted").inc()
        self.metrics.results.inc(receipt.accepted)
        return {"accepted": receipt.accepted, "duplicate": receipt.duplicate,
                "chain_head": receipt.chain_head}

    def _ingest(self, probe_id: str, body: bytes) -> WriteReceipt:
        known = self._known_batch(probe_id, body)
        if known is not None:
            return known
        try:
            batch = decode_body(body)
        except RecordError as exc:
            raise bad_record(exc) from None
        if batch.probe_id != probe_id:
            raise Problem(403, {"error": f"probe {probe_id!r} cannot write results of probe "
                                         f"{batch.probe_id!r}", "field": "probe_id",
                                "reason": "wrong_probe"}, "wrong_probe")
        try:
            return self.store.write_blocks(batch, time.time_ns())
        except RecordError as exc:
            raise bad_record(exc) from None
        except Exception as exc:
            log.exception("store write failed")
            if retryable(exc):  # disk full, database locked or gone: nothing acknowledged
                raise Problem(503, {"error": f"store unavailable: {exc}"},
                              "store_error") from None
            # the store refused this batch's values, as it would on every retry: a 4xx, so
            # the probe sets the batch aside and goes on (a decoder gap, logged above)
            raise Problem(422, {"error": f"the store cannot hold this batch: {exc}",
                                "field": "body"}, "store_refused") from None

    def _known_batch(self, probe_id: str, body: bytes) -> WriteReceipt | None:
        """A re-sent batch is answered without decoding it: canonical bodies (sorted keys)
        start with the batch id, looked up under the *authenticated* probe."""
        m = _BATCH_ID.match(body)
        if m is None:
            return None
        try:
            return self.store.batch_receipt(probe_id, m.group(1).decode())
        except UnicodeDecodeError:
            return None

    async def heartbeat(self, request: Request) -> Response:
        """Store a probe's heartbeat (``ixmeter.core.heartbeat``: at most ``MAX_BODY`` bytes, fixed
        counter names) and export it on ``/metrics``; 400/413/422 name what is wrong."""
        probe_id = request.path_params["probe_id"]
        head = self._authenticate(request, url_probe=probe_id)
        body = await self._read_body(request, heartbeat.MAX_BODY)
        self._check_body(head, body)
        hb = parse_heartbeat(body)
        await self.in_store_thread(self.store.record_heartbeat, probe_id, time.time_ns(),
                                   hb.spool_depth, hb.version, hb.counters)
        self.metrics.probes.report(probe_id, hb)
        return JSONResponse({"ok": True})

    async def get_inventory(self, request: Request) -> Response:
        """The probe's plan, signed with each key the collector accepts for it
        (:mod:`ixmeter.core.plan`), so the probe can check it and the copy it caches."""
        probe_id = request.path_params["probe_id"]
        head = self._authenticate(request, url_probe=probe_id)
        self._check_body(head, await self._read_body(request))
        if self.inventory is None:
            raise Problem(404, {"error": "this collector was started without --inventory"},
                          "no_inventory")
        signed = signed_plan(self.inventory, probe_id, self.auth.keys.keys_for(probe_id),
                             self.clock())
        if signed is None:
            raise Problem(404, {"error": f"probe {probe_id!r} is not in the inventory",
                                "field": "probe_id"}, "unknown_in_inventory")
        return Response(signed.body, media_type="application/json",
                        headers={plan_format.HEADER: signed.signature})

    async def healthz(self, request: Request) -> Response:
        head = await self.in_store_thread(self.store.chain_head)
        return JSONResponse({"ok": True, "version": __version__, "chain_length": head.length,
                             "chain_head": head.head})

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document(__version__))

    async def metrics_page(self, request: Request) -> Response:
        """``/metrics``, rendered on a worker thread one at a time, so that a large exposition
        never stalls the event loop (health checks, ingest)."""
        if self._render_limiter is None:
            self._render_limiter = trio.CapacityLimiter(1)
        body, headers = await trio.to_thread.run_sync(
            self.metrics.render, request.headers.get("accept", ""),
            request.headers.get("accept-encoding", ""), limiter=self._render_limiter)
        return Response(body, headers=headers)


class _AsgiApp:
    """Wraps an ASGI callable so Starlette's Route serves it as an app, not an endpoint."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)


class _BatchesFirst:
    """The collector's ASGI app: ``POST /v1/batches`` straight to its handler, everything else
    (including other methods on that path, answered 405 as before) to the Starlette router."""

    def __init__(self, batches: AsgiApp, rest: Starlette) -> None:
        self._batches, self._rest = batches, rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["path"] == BATCHES_PATH
                and scope["method"] == "POST" and not scope.get("root_path")):
            await self._batches(scope, receive, send)
        else:
            await self._rest(scope, receive, send)


def _auth_problem(exc: AuthError) -> Problem:
    status = 403 if exc.reason == "wrong_probe" else 401
    return Problem(status, {"error": str(exc), "reason": exc.reason}, exc.reason)


def request_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI header pairs as a dict of lower-case names to latin-1 values; the first of repeated
    names wins, as in ``dict(starlette.requests.Request.headers)``."""
    headers: dict[str, str] = {}
    for name, value in raw:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return headers


class ClientGone(Exception):
    """The client disconnected before its request body was complete."""


async def _body_chunks(receive: Receive) -> AsyncGenerator[bytes, None]:
    """The request body's chunks as the ASGI server delivers them, up to the last one; raises
    :class:`ClientGone` if the client disconnects first."""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def json_bytes(obj: Any) -> bytes:
    """Compact UTF-8 JSON, byte for byte what Starlette's ``JSONResponse`` renders for the
    collector's answers (str, int, bool and None values), at a tenth of the cost."""
    return orjson.dumps(obj)


async def _send_answer(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()),
                            (b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": body})


_BATCH_ID = re.compile(rb'\{"batch_id":"([^"\\]{1,256})"')
_FIELD = re.compile(r"field '([^']+)': ")


def field_of(message: str) -> str:
    """The field a :class:`RecordError` message names (``field 'streams[2].rtt_ns[17]': ...``
    gives ``streams[2].rtt_ns[17]``); ``body`` for a message that names none."""
    f = _FIELD.match(message)
    return f.group(1) if f else "body"


def bad_record(exc: RecordError) -> Problem:
    """400 for a body that is not JSON or not an object, 422 naming the field otherwise: such
    a batch can never be accepted, so a probe sets it aside instead of retrying."""
    message = str(exc)
    field = field_of(message)
    if field == "body":
        return Problem(400, {"error": message, "field": "body"}, "malformed_body")
    return Problem(422, {"error": message, "field": field}, "bad_field")


def _too_large(size: int, limit: int) -> Problem:
    return Problem(413, {"error": f"body of {size} bytes or more exceeds the limit of "
                                  f"{limit} bytes", "field": "body"}, "oversize")


def retryable(exc: BaseException) -> bool:
    """Whether a store error is about the store (I/O, disk full, lock, lost connection: the
    same batch may succeed later) rather than the batch's values."""
    if isinstance(exc, OSError | sqlite3.OperationalError):
        return True
    return any(k.__module__.startswith("psycopg") and k.__name__ in (
        "OperationalError", "InterfaceError") for k in type(exc).__mro__)


def parse_heartbeat(body: bytes) -> heartbeat.Heartbeat:
    """``ixmeter.core.heartbeat.decode``; 400 for a body that is not a JSON object, 422 naming the
    field otherwise (an unknown counter name, a value that is not an integer >= 0 ...)."""
    try:
        return heartbeat.decode(body)
    except heartbeat.HeartbeatError as exc:
        if exc.field == "body":
            raise Problem(400, {"error": str(exc), "field": "body"}, "malformed_body") from None
        raise Problem(422, {"error": str(exc), "field": exc.field}, "bad_field") from None


class ProbeReports:
    """The last heartbeat of each authenticated probe as Prometheus families
    ``ixmeter_collector_probe_*``: ``spool_depth{probe}`` and one family per
    :data:`ixmeter.core.heartbeat.COUNTERS` family (its type, help and label), so the probe's own
    ``ixmeter_probe_*`` names are never reused with another meaning. A custom collector: a
    scrape reads the dict as it is, heartbeats replace it (copy on write)."""

    def __init__(self) -> None:
        self._last: dict[str, heartbeat.Heartbeat] = {}

    def report(self, probe_id: str, hb: heartbeat.Heartbeat) -> None:
        self._last = {**self._last, probe_id: hb}

    def collect(self) -> Iterator[Metric]:
        last = sorted(self._last.items())
        depth = GaugeMetricFamily(f"{PROBE_PREFIX}spool_depth", "results waiting in the "
                                  "probe's spool, as last reported", labels=["probe"])
        for probe, hb in last:
            if hb.spool_depth is not None:
                depth.add_metric([probe], hb.spool_depth)
        yield depth
        families: dict[str, _Family] = {}
        for c in heartbeat.COUNTERS:
            family = families.get(c.family)
            if family is None:
                family = families[c.family] = _family(c)
            for probe, hb in last:
                if c.name in hb.counters:
                    labels = [probe] if c.label is None else [probe, c.label[1]]
                    family.add_metric(labels, hb.counters[c.name])
        yield from families.values()


PROBE_PREFIX = "ixmeter_collector_probe_"
_Family = CounterMetricFamily | GaugeMetricFamily


def _family(c: heartbeat.CounterName) -> _Family:
    kind = CounterMetricFamily if c.kind == "counter" else GaugeMetricFamily
    labels = ["probe"] if c.label is None else ["probe", c.label[0]]
    return kind(PROBE_PREFIX + c.family, f"{c.help}, as last reported", labels=labels)
