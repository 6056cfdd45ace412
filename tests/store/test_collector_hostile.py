"""The collector against clients without a key, and slow or greedy ones: exact bytes over
loopback sockets to a real collector (SQLite store) served with short limits."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.core import GaugeMetricFamily, Metric

from analyzer.collector.app import Collector
from analyzer.collector.auth import Authenticator
from analyzer.collector.h11server import Limits
from analyzer.collector.keys import KeyRing
from analyzer.collector.server import serve
from analyzer.store import Store, open_store
from analyzer.synthetic.varied import make_batches
from ixmeter.core.wire import (
    HEADER_DIGEST,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    AuthError,
    encode_columns,
    sign,
    signed_head,
    signing_string,
)
from tests.store.test_http_limits import dribble

KEY, PROBE = b"k" * 32, "cs-tianyi-zn-ct"
LIMITS = Limits(max_connections=64, head_timeout_s=1.0, body_grace_s=0.5, body_min_rate=1000.0)
EIGHT_MIB = 8 * 1024 * 1024


@dataclass
class Running:
    collector: Collector
    store: Store
    port: int
    client: httpx.AsyncClient

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def exchange(self, head: bytes, body_parts: list[bytes] = (), pause: float = 0.0,
                       wait: float = 10.0) -> bytes:
        """Send ``head`` then each body part after ``pause`` s, reading all the while; the
        answer up to the server's close."""
        out = b""
        async with await trio.open_tcp_stream("127.0.0.1", self.port) as stream:
            with trio.fail_after(wait):
                await stream.send_all(head)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(dribble, stream, list(body_parts), pause)
                    while chunk := await stream.receive_some(65536):
                        out += chunk
                    nursery.cancel_scope.cancel()
        return out

    def stored_batches(self) -> int:
        return self.store.chain_head().length


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    store = open_store(tmp_path / "c.db")
    collector = Collector(store, Authenticator(KeyRing({PROBE: [KEY]})), max_body=EIGHT_MIB)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        [url] = await nursery.start(lambda task_status: serve(
            collector, "127.0.0.1:0", limits=LIMITS, shutdown_trigger=stop.wait,
            task_status=task_status))
        async with httpx.AsyncClient(timeout=30) as client:
            yield Running(collector, store, int(url.rsplit(":", 1)[1]), client)
        stop.set()
    store.close()


def _head(headers: dict[str, str], length: int, path: str = "/v1/batches") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x", f"Content-Length: {length}",
             *[f"{k}: {v}" for k, v in headers.items()], "", ""]
    return "\r\n".join(lines).encode()


def _signed_as(timestamp: str, body: bytes, nonce: str = "ab" * 16) -> dict[str, str]:
    """Headers with the probe's *valid* HMAC over any timestamp text (a hostile probe, or
    a bug)."""
    digest = hashlib.sha256(body).hexdigest()
    mac = hmac.new(KEY, signing_string("POST", "/v1/batches", timestamp, nonce, digest),
                   hashlib.sha256).hexdigest()
    return {"X-Ixmeter-Probe": PROBE, HEADER_TIMESTAMP: timestamp, HEADER_NONCE: nonce,
            HEADER_DIGEST: digest, HEADER_SIGNATURE: mac}


def _body() -> bytes:
    return encode_columns(make_batches(PROBE, 1, 20)[0])


def _edited(**changes: str) -> dict[str, str]:
    headers = sign(KEY, PROBE, "POST", "/v1/batches", _body(), time.time())
    for name, value in changes.items():
        header = {"probe": "X-Ixmeter-Probe", "timestamp": HEADER_TIMESTAMP,
                  "nonce": HEADER_NONCE, "digest": HEADER_DIGEST,
                  "signature": HEADER_SIGNATURE}[name]
        if value:
            headers[header] = value
        else:
            del headers[header]
    return headers


def _bad_heads() -> Iterator[tuple[str, dict[str, str], str]]:
    """(case, headers, reason), signed now."""
    now = time.time()
    yield "unknown probe", _edited(probe="nobody"), "unknown_probe"
    yield "no signature", _edited(signature=""), "missing_headers"
    yield "no digest", _edited(digest=""), "missing_headers"
    for label, text in (("nan", "nan"), ("NaN", "NaN"), ("inf", "inf"), ("-inf", "-inf"),
                        ("exponent", "1e9"), ("now with exponent", f"{now:.3f}e0"),
                        ("negative", f"-{now:.3f}"), ("plus sign", f"+{now:.3f}"),
                        ("hex", "0x10"), ("non-ASCII digit", f"{now:.3f}\u0661")):
        yield f"timestamp {label}", _signed_as(text, _body()), "bad_timestamp"
    yield "stale timestamp", _signed_as(f"{now - 3600:.3f}", _body()), "stale_timestamp"
    yield "long nonce", _edited(nonce="a" * 65), "bad_nonce"
    yield "huge nonce", _edited(nonce="a" * 8000), "bad_nonce"
    yield "short nonce", _edited(nonce="a" * 15), "bad_nonce"
    yield "non-hex nonce", _edited(nonce="g" * 32), "bad_nonce"
    yield "signature form", _edited(signature="A" * 64), "bad_signature"
    yield "wrong signature", _edited(signature="0" * 64), "bad_signature"
    yield "another body's digest", _edited(digest="0" * 64), "bad_signature"


_CASES = [case for case, _, _ in _bad_heads()]


@pytest.mark.parametrize("case", _CASES)
async def test_a_bad_head_is_401_before_any_body_byte(running: Running, case: str) -> None:
    """An 8 MiB body announced, none sent: the answer comes at once and the connection is
    closed; the nonce cache is untouched."""
    [(headers, reason)] = [(h, r) for c, h, r in _bad_heads() if c == case]  # signed now
    out = await running.exchange(_head(headers, EIGHT_MIB))
    assert out.startswith(b"HTTP/1.1 401 "), out[:80]
    assert f'"reason":"{reason}"'.encode() in out
    assert b"connection: close" in out.lower()
    assert len(running.collector.auth.nonces) == 0
    assert running.stored_batches() == 0


async def test_unauthenticated_connections_hold_no_bodies(running: Running) -> None:
    """40 clients announce 8 MiB under a known probe id, a fresh timestamp and a made-up
    signature, and keep sending: each is answered 401 and closed after the first 64 KiB
    read at most (the 320 MiB the old server buffered is never read)."""
    heads = [_head(_edited(signature="0" * 64, nonce=f"{k:032x}"), EIGHT_MIB)
             for k in range(40)]
    answers: list[bytes] = []

    async def one(head: bytes) -> None:
        answers.append(await running.exchange(head, [b"z" * 65536] * 128))

    async with trio.open_nursery() as nursery:
        for head in heads:
            nursery.start_soon(one, head)
    assert all(a.startswith(b"HTTP/1.1 401 ") for a in answers)
    assert len(answers) == 40
    assert running.collector.metrics.auth_failures.labels("bad_signature")._value.get() == 40


async def test_a_signed_head_burns_its_nonce_once(running: Running) -> None:
    body = _body()
    headers = sign(KEY, PROBE, "POST", "/v1/batches", body, time.time())
    first = await running.exchange(_head({**headers, "Connection": "close"}, len(body)) + body)
    assert first.startswith(b"HTTP/1.1 200 ")
    replay = await running.exchange(_head(headers, EIGHT_MIB))  # no body needed to refuse it
    assert replay.startswith(b"HTTP/1.1 401 ")
    assert b'"reason":"replayed_nonce"' in replay
    assert running.stored_batches() == 1


@pytest.mark.parametrize("path", ["/v1/batches", f"/v1/probes/{PROBE}/heartbeat"])
async def test_a_signed_body_dribbled_is_408_and_nothing_stored(running: Running,
                                                                path: str) -> None:
    body = _body() if path == "/v1/batches" else b'{"spool_depth": 1}'
    headers = sign(KEY, PROBE, "POST", path, body, time.time())
    out = await running.exchange(_head(headers, len(body), path),
                                 [body[i:i + 1] for i in range(len(body))], pause=0.1)
    assert out.startswith(b"HTTP/1.1 408 ")
    assert running.stored_batches() == 0
    assert running.store.probe_health() == []
    assert (await running.client.get(running.url + "/healthz")).status_code == 200


async def test_metrics_are_rendered_off_the_event_loop(running: Running) -> None:
    """While a ``/metrics`` render is stuck (a collector that blocks until released), health
    checks and ingest are served; the scrape then completes."""
    release, entered = threading.Event(), threading.Event()
    running.collector.metrics.registry.register(_Blocking(release, entered))
    async with trio.open_nursery() as nursery:
        scraped: list[str] = []

        async def scrape() -> None:
            response = await running.client.get(running.url + "/metrics")
            scraped.append(response.text)

        nursery.start_soon(scrape)
        assert await trio.to_thread.run_sync(entered.wait, 10)
        with trio.fail_after(10):
            assert (await running.client.get(running.url + "/healthz")).status_code == 200
            body = _body()
            assert (await running.client.post(running.url + "/v1/batches", content=body,
                                              headers=sign(KEY, PROBE, "POST", "/v1/batches",
                                                           body, time.time()))
                    ).status_code == 200
        assert scraped == []
        release.set()
    assert "ixmeter_test_blocking 1.0" in scraped[0]
    assert "ixmeter_collector_connections " in scraped[0]


class _Blocking:
    """A prometheus collector whose collect() waits for ``release``."""

    def __init__(self, release: threading.Event, entered: threading.Event) -> None:
        self.release, self.entered = release, entered

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        self.entered.set()
        self.release.wait(30)
        yield GaugeMetricFamily("ixmeter_test_blocking", "blocks", value=1)


_header_text = st.text(st.characters(codec="latin-1"), max_size=80)


@given(st.dictionaries(st.sampled_from(["X-Ixmeter-Probe", "x-ixmeter-timestamp",
                                        HEADER_TIMESTAMP, HEADER_NONCE, HEADER_DIGEST,
                                        HEADER_SIGNATURE, "other"]), _header_text),
       st.floats(allow_nan=True, allow_infinity=True))
@settings(max_examples=500, deadline=None)
def test_any_head_authenticates_or_raises_auth_error(headers: dict[str, str],
                                                     now: float) -> None:
    """Whatever the head holds, checking it gives a verified head or :class:`AuthError`,
    never another exception, and no head passes without a valid signature."""
    auth = Authenticator(KeyRing({PROBE: [KEY]}))
    with pytest.raises(AuthError):
        auth.authenticate_head({**headers, "X-Ixmeter-Probe": PROBE}, "POST", "/v1/batches",
                               now)
    with contextlib.suppress(AuthError):
        signed_head(headers)
