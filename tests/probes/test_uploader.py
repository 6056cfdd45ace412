"""The uploader against the real collector (analyzer.collector over HTTP on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import random
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from analyzer.collector.app import Collector
from analyzer.collector.auth import Authenticator
from analyzer.collector.keys import KeyRing
from analyzer.collector.server import serve
from analyzer.store import Query, Store, open_store
from probes.spool import Spool
from probes.uploader import Backoff, Uploader
from tests.probes.test_spool import PROBE, result

KEY = b"k" * 32
ALL = Query(0, 2**62)


@dataclass
class Live:
    url: str
    store: Store

    def seqs(self) -> list[int]:
        return sorted(r.seq for r in self.store.read_results(ALL))


@pytest.fixture
async def collector(tmp_path: Path) -> AsyncIterator[Live]:
    store = open_store(tmp_path / "collector.db")
    app = Collector(store, Authenticator(KeyRing({PROBE: [KEY]})), max_body=64 * 1024)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        [url] = await nursery.start(lambda task_status: serve(
            app, "127.0.0.1:0", shutdown_trigger=stop.wait, task_status=task_status))
        yield Live(url, store)
        stop.set()
    store.close()


def _spool(tmp_path: Path, n: int) -> Spool:
    spool = Spool(tmp_path / "probe.db", PROBE)
    spool.add(result(i) for i in range(n))
    return spool


def _uploader(spool: Spool, url: str, key: bytes = KEY, **kw: object) -> Uploader:
    return Uploader(spool, url, PROBE, key, batch_size=100, backoff=Backoff(0.01, 0.05),
                    rng=random.Random(1), **kw)  # type: ignore[arg-type]


async def test_everything_delivered_once_then_spool_empty(tmp_path: Path,
                                                          collector: Live) -> None:
    spool = _spool(tmp_path, 250)
    up = _uploader(spool, collector.url)
    async with httpx.AsyncClient() as client:
        assert await up.upload_pending(client) == 250
        assert await up.heartbeat(client, {"sent": 250})
    assert spool.depth() == 0
    assert collector.seqs() == list(range(250))


async def test_resend_after_crash_between_commit_and_ack_is_idempotent(
        tmp_path: Path, collector: Live) -> None:
    spool = _spool(tmp_path, 50)
    sealed = spool.seal(100)
    assert sealed is not None
    up = _uploader(spool, collector.url)
    async with httpx.AsyncClient() as client:
        assert await up._send(client, sealed) == 50  # committed and acked...
        spool.close()  # ...but pretend the ack never reached the disk: reopen an old copy
        spool = Spool(tmp_path / "probe.db", PROBE)
        assert spool.next_batch() is None
        spool.add(result(i) for i in range(50, 60))
        spool._db.execute("INSERT INTO batches VALUES (0, ?, ?, ?)",
                          (sealed.batch_id, sealed.n, sealed.body))
        up.spool = spool
        assert await up.upload_pending(client) == 60
    assert collector.seqs() == list(range(60))  # the re-sent batch was a duplicate


async def test_collector_unreachable_keeps_everything(tmp_path: Path, collector: Live) -> None:
    spool = _spool(tmp_path, 120)
    with trio.socket.socket() as s:
        await s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening
        up = _uploader(spool, dead)
        async with httpx.AsyncClient() as client:
            assert await up.upload_pending(client) is None
            assert await up.upload_pending(client) is None
    assert up.errors["unreachable"] == 2
    assert spool.depth() == 120
    up.url = collector.url
    async with httpx.AsyncClient() as client:
        assert await up.upload_pending(client) == 120
    assert collector.seqs() == list(range(120))


async def test_wrong_key_is_retried_not_dropped(tmp_path: Path, collector: Live) -> None:
    spool = _spool(tmp_path, 10)
    up = _uploader(spool, collector.url, key=b"x" * 32)
    async with httpx.AsyncClient() as client:
        assert await up.upload_pending(client) is None
    assert up.errors["auth"] == 1
    assert spool.depth() == 10
    assert collector.seqs() == []


async def test_too_large_batch_is_split(tmp_path: Path, collector: Live) -> None:
    spool = _spool(tmp_path, 3000)
    up = _uploader(spool, collector.url)
    up.batch_size = 3000  # ~100 kB (wire v2) > the collector's 64 kB limit
    async with httpx.AsyncClient() as client:
        assert await up.upload_pending(client) == 3000
    assert up.errors["too_large"] >= 1
    assert collector.seqs() == list(range(3000))


async def test_run_until_stop_drains(tmp_path: Path, collector: Live) -> None:
    spool = _spool(tmp_path, 30)
    up = _uploader(spool, collector.url, idle_s=0.05)
    stop = trio.Event()
    stop.set()
    with trio.fail_after(10):
        await up.run(stop)
    assert spool.depth() == 0


UPLOADER = """
import sys, trio
from probes.spool import Spool
from probes.uploader import Uploader
from tests.probes.test_spool import PROBE
spool = Spool(sys.argv[1], PROBE)
trio.run(Uploader(spool, sys.argv[2], PROBE, b"k" * 32, batch_size=20, idle_s=0.01).run)
"""


async def test_kill_9_mid_upload_loses_and_duplicates_nothing(tmp_path: Path,
                                                              collector: Live) -> None:
    spool = _spool(tmp_path, 3000)
    spool.close()
    child = await trio.lowlevel.open_process(
        [sys.executable, "-c", UPLOADER, str(tmp_path / "probe.db"), collector.url],
        cwd=Path(__file__).parents[2])
    try:
        for _ in range(3000):  # up to 60 s
            if len(collector.seqs()) >= 400:
                break
            await trio.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    stored = len(collector.seqs())
    assert 0 < stored < 3000
    spool = Spool(tmp_path / "probe.db", PROBE)
    async with httpx.AsyncClient() as client:
        await _uploader(spool, collector.url).upload_pending(client)
    assert collector.seqs() == list(range(3000))
    assert spool.depth() == 0


async def test_refused_batch_is_set_aside_and_the_queue_moves_on(tmp_path: Path,
                                                                 collector: Live) -> None:
    spool = Spool(tmp_path / "probe.db", PROBE)
    bad = dataclasses.replace(result(0), src_site="")  # the collector refuses it (400/422)
    spool.add([bad, result(1)])
    sealed = spool.seal()  # the spool itself sets the invalid record aside
    assert sealed is not None
    assert sealed.n == 1
    body = sealed.body.replace(b'"src_site":"cs-tianyi-zn"', b'"src_site":""')
    spool._db.execute("UPDATE batches SET body = ?", (body,))  # as if sealed by an old agent
    spool.add(result(i) for i in range(2, 11))
    up = _uploader(spool, collector.url)
    async with httpx.AsyncClient() as client:
        assert await up.upload_pending(client) == 9
    assert up.errors["rejected"] == 1
    assert (spool.depth(), spool.rejected()) == (0, 2)
    assert collector.seqs() == list(range(2, 11))
