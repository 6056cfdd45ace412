"""Signed upload of spooled batches to the collector, with exponential back-off and jitter.

Contract (analyzer/collector): ``POST /v1/batches`` answers 200 ``{"accepted", "duplicate"}``
once the batch is committed; only then is it deleted from the spool. 401/403 (auth), 5xx and
timeouts are retried with "full jitter" back-off (delay drawn uniformly in [0, min(cap,
base * 2^attempt)]); 400/422 (the collector can never accept this body) set the batch aside in
the spool's ``rejected`` table; 413 splits it in two. Requests are signed with
``ixmeter.wire.sign`` (HMAC-SHA256, RFC 2104). httpx's AsyncClient runs under trio via anyio.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from ixmeter import __version__
from ixmeter.wire import sign
from probes.spool import SealedBatch, Spool

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
        """Send every waiting batch; return results acknowledged, or None after a failure."""
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
        status = response.status_code
        if status == 200:
            await self._db(self.spool.ack, batch.batch_id)
            self.uploaded += batch.n
            return batch.n
        if status in (400, 422):
            self.errors["rejected"] += 1
            log.error("collector refused batch %s: %s", batch.batch_id, response.text[:300])
            await self._db(self.spool.quarantine, batch.batch_id, response.text[:1000])
            return 0
        if status == 413:
            self.errors["too_large"] += 1
            await self._db(self.spool.split, batch.batch_id)
            return 0
        reason = "auth" if status in (401, 403) else "server"
        self._failed(reason, f"HTTP {status}: {response.text[:300]}")
        return None

    def _failed(self, reason: str, detail: str) -> None:
        self.errors[reason] += 1
        log.warning("upload failed (%s): %s", reason, detail)

    async def heartbeat(self, client: httpx.AsyncClient, counters: Mapping[str, int]) -> bool:
        """``POST /v1/probes/{id}/heartbeat`` with version, spool depth and counters."""
        depth = await self._db(self.spool.depth)
        body = json.dumps({"version": __version__, "spool_depth": depth,
                           "counters": dict(counters)}, sort_keys=True).encode()
        path = f"/v1/probes/{self.probe_id}/heartbeat"
        headers = sign(self.key, self.probe_id, "POST", path, body, self.now())
        headers["Content-Type"] = "application/json"
        try:
            response = await client.post(self.url + path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self._failed("heartbeat", str(exc))
            return False
        if response.status_code != 200:
            self._failed("heartbeat", f"HTTP {response.status_code}")
        return response.status_code == 200
