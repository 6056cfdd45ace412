"""Signed upload of spooled batches to the collector, with exponential back-off and jitter.

Contract (analyzer/collector): ``POST /v1/batches`` answers 200 ``{"accepted", "duplicate"}``
once the batch is committed; only then is it deleted from the spool. What each answer leads to
(:func:`disposition`):

- 200: acknowledged, deleted from the spool.
- 400, 422 (the collector can never accept this body): *set aside* in the spool's ``rejected``
  table with reason ``refused`` and the collector's answer; the next batch is sent at once.
- 413: split in two batches; a batch of one result is set aside (``too_large``), next at once.
- 401, 403 (keys), 408, 429, 5xx, timeouts and connection errors: retried, same batch, after
  "full jitter" back-off (delay drawn uniformly in [0, min(cap, base * 2^attempt)]).
- Any other status (404, 405, a redirect: a wrong ``collector_url``): a configuration error,
  logged as such and retried with back-off; never set aside, the batch may be fine.

Set-aside batches are never sent again; they are counted on the probe's ``/metrics`` and in
every heartbeat (``ixmeter.core.heartbeat``). Requests are signed with ``ixmeter.core.wire.sign``
(HMAC-SHA256, RFC 2104). httpx's AsyncClient runs under trio via anyio.
"""

from __future__ import annotations

import enum
import logging
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from ixmeter.core import __version__, heartbeat
from ixmeter.core.wire import sign
from probes.spool import SealedBatch, Spool, SpoolStatus

BATCHES_PATH = "/v1/batches"
log = logging.getLogger("ixmeter.probe.uploader")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential back-off with full jitter (AWS architecture blog, "Exponential Backoff And
    Jitter", 2015): attempt k waits U(0, min(cap, base * 2^k))."""

    base_s: float = 1.0
    cap_s: float = 300.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.cap_s, self.base_s * 2 ** min(attempt, 30)))


class Action(enum.Enum):
    """What the uploader does with a batch after the collector's answer."""

    ACK = "ack"  # committed: delete from the spool
    SET_ASIDE = "set_aside"  # can never be accepted: keep in ``rejected``, go on at once
    SPLIT = "split"  # too large: two halves (a single result is set aside)
    RETRY = "retry"  # may succeed later: same batch after back-off
    CONFIG = "config"  # the probe's configuration is wrong: back-off, logged as such


RETRYABLE = frozenset({401, 403, 408, 429})


def disposition(status: int) -> Action:
    """The action for an HTTP status of ``POST /v1/batches`` (module docstring)."""
    if status == 200:
        return Action.ACK
    if status in (400, 422):
        return Action.SET_ASIDE
    if status == 413:
        return Action.SPLIT
    if status in RETRYABLE or 500 <= status <= 599:
        return Action.RETRY
    return Action.CONFIG


class Uploader:
    """Moves sealed batches from the spool to the collector; one request at a time, in order."""

    def __init__(self, spool: Spool, url: str, probe_id: str, key: bytes, *,
                 client: httpx.AsyncClient | None = None, batch_size: int = 1000,
                 backoff: Backoff = Backoff(), idle_s: float = 1.0,
                 rng: random.Random | None = None, now: Callable[[], float] = time.time,
                 limiter: trio.CapacityLimiter | None = None) -> None:
        self.spool, self.url, self.probe_id, self.key = spool, url.rstrip("/"), probe_id, key
        self.client = client
        self.batch_size, self.backoff, self.idle_s = batch_size, backoff, idle_s
        self.rng = rng or random.Random()
        self.now = now
        self.limiter = limiter or trio.CapacityLimiter(1)
        self.errors: Counter[str] = Counter()
        self.uploaded = 0
        self.attempt = 0

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def run(self, stop: trio.Event | None = None) -> None:
        """Upload until cancelled (or ``stop`` is set and the spool is empty)."""
        if self.client is not None:
            await self._loop(self.client, stop)
            return
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as client:
            await self._loop(client, stop)

    async def _loop(self, client: httpx.AsyncClient, stop: trio.Event | None) -> None:
        while True:
            sent = await self.upload_pending(client)
            if stop is not None and stop.is_set() and sent is not None:
                return
            delay = self.idle_s if sent is not None else self.backoff.delay(
                self.attempt, self.rng)
            with trio.move_on_after(delay):
                if stop is not None and sent is not None:
                    await stop.wait()  # wake early to drain
                else:
                    await trio.sleep_forever()

    async def upload_pending(self, client: httpx.AsyncClient) -> int | None:
        """Send every waiting batch; return results acknowledged, or None after a failure
        (the collector's, or the spool's own: a full disk cannot seal or forget a batch)."""
        try:
            return await self._upload_pending(client)
        except (sqlite3.Error, OSError) as exc:
            self._failed("spool", f"{type(exc).__name__}: {exc}")
            self.attempt += 1
            return None

    async def _upload_pending(self, client: httpx.AsyncClient) -> int | None:
        total = 0
        while True:
            batch: SealedBatch | None = await self._db(self.spool.next_batch)
            if batch is None:
                batch = await self._db(self.spool.seal, self.batch_size)
            if batch is None:
                return total
            acked = await self._send(client, batch)
            if acked is None:
                self.attempt += 1
                return None
            self.attempt = 0
            total += acked

    async def _send(self, client: httpx.AsyncClient, batch: SealedBatch) -> int | None:
        """POST one batch; results acknowledged (0 if set aside or split), None on failure."""
        headers = sign(self.key, self.probe_id, "POST", BATCHES_PATH, batch.body, self.now())
        headers["Content-Type"] = "application/json"
        try:
            response = await client.post(self.url + BATCHES_PATH, content=batch.body,
                                         headers=headers)
        except httpx.HTTPError as exc:
            self._failed("unreachable", f"{type(exc).__name__}: {exc}")
            return None
        return await self._answered(batch, response.status_code, response.text[:1000])

    async def _answered(self, batch: SealedBatch, status: int, answer: str) -> int | None:
        """Act on the collector's answer (:func:`disposition`)."""
        action = disposition(status)
        if action is Action.ACK:
            await self._db(self.spool.ack, batch.batch_id)
            self.uploaded += batch.n
            return batch.n
        if action is Action.SET_ASIDE:
            self.errors["refused"] += 1
            log.error("collector refused batch %s of %d results (HTTP %d), set aside in the "
                      "spool: %s", batch.batch_id, batch.n, status, answer[:300])
            await self._db(self.spool.set_aside, batch.batch_id, "refused",
                           f"HTTP {status}: {answer}")
            return 0
        if action is Action.SPLIT:
            self.errors["too_large"] += 1
            await self._db(self.spool.split, batch.batch_id, f"HTTP {status}: {answer}")
            return 0
        if action is Action.CONFIG:
            self.errors["config"] += 1
            log.error("collector at %s answered HTTP %d to POST %s: check collector_url in the "
                      "probe config; retrying with back-off (%s)", self.url, status,
                      BATCHES_PATH, answer[:300])
            return None
        self._failed("auth" if status in (401, 403) else "server",
                     f"HTTP {status}: {answer[:300]}")
        return None

    def _failed(self, reason: str, detail: str) -> None:
        self.errors[reason] += 1
        log.warning("upload failed (%s): %s", reason, detail)

    async def heartbeat(self, client: httpx.AsyncClient, counters: Mapping[str, int],
                        status: SpoolStatus | None = None) -> bool:
        """``POST /v1/probes/{id}/heartbeat``: version, spool depth, ``counters`` and the
        spool's set-aside counts, bytes and drops (``status``, else read from the spool)
        (:mod:`ixmeter.core.heartbeat`; names outside its fixed set are the caller's bug and raise
        :class:`~ixmeter.core.heartbeat.HeartbeatError`)."""
        if status is None:
            status = await self._db(self.spool.status)
        body = heartbeat.encode(heartbeat.Heartbeat(
            __version__, status.depth,
            {**counters, **heartbeat.set_aside_counters(status.set_aside),
             **heartbeat.spool_counters(status.bytes, status.dropped)}))
        path = f"/v1/probes/{self.probe_id}/heartbeat"
        headers = sign(self.key, self.probe_id, "POST", path, body, self.now())
        headers["Content-Type"] = "application/json"
        try:
            response = await client.post(self.url + path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self._failed("heartbeat", str(exc))
            return False
        if response.status_code != 200:
            self._failed("heartbeat", f"HTTP {response.status_code}: {response.text[:300]}")
        return response.status_code == 200
