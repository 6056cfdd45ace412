"""The uploader against the real collector (analyzer.collector over HTTP on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
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
from ixmeter.core import heartbeat
from probes.agent import Agent
from probes.config import load_config
from probes.spool import Spool, SpoolStatus
from probes.uploader import Action, Backoff, Uploader, disposition
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


def _poisoned_spool(tmp_path: Path) -> tuple[Spool, str]:
    """A spool whose oldest sealed batch the collector answers 422 (an empty ``src_site``, as
    if sealed by an agent with other rules), then 9 good results; returns it and that batch's
    id."""
    spool = Spool(tmp_path / "probe.db", PROBE)
    spool.add([result(1)])
    sealed = spool.seal()
    assert sealed is not None
    body = sealed.body.replace(b'"src_site":"cs-tianyi-zn"', b'"src_site":""')
    assert body != sealed.body
    spool._db.execute("UPDATE batches SET body = ?", (body,))
    spool.add(result(i) for i in range(2, 11))
    return spool, sealed.batch_id


async def test_refused_batch_is_set_aside_and_the_queue_moves_on(tmp_path: Path,
                                                                 collector: Live) -> None:
    """Issue 15: a probe whose oldest spooled batch is refused keeps uploading the rest; the
    batch stays in ``rejected``, the heartbeat reports it, the collector stores and exports
    it."""
    spool, poisoned = _poisoned_spool(tmp_path)
    up = _uploader(spool, collector.url)
    async with httpx.AsyncClient() as client:
        assert await up.upload_pending(client) == 9
        assert await up.heartbeat(client, {"sent": 10})
        text = (await client.get(collector.url + "/metrics")).text
    assert up.errors["refused"] == 1
    assert up.attempt == 0  # no back-off
    assert _queue(spool.status()) == (0, {"refused": (1, 1)})
    batch_id, reason, detail = spool._db.execute(
        "SELECT batch_id, reason, detail FROM rejected").fetchone()
    assert (batch_id, reason) == (poisoned, "refused")
    assert detail.startswith("HTTP 422: ")
    assert "src_site" in detail
    assert collector.seqs() == list(range(2, 11))
    [health] = collector.store.probe_health()
    assert health.spool_depth == 0
    assert health.counters is not None
    assert heartbeat.set_aside_totals(health.counters) == (1, 1)
    assert health.counters["set_aside_batches.refused"] == 1
    assert f'ixmeter_collector_probe_set_aside_batches{{probe="{PROBE}",reason="refused"}} ' \
        '1.0' in text


async def test_poison_first_costs_no_back_off(tmp_path: Path, collector: Live) -> None:
    spool, _poisoned = _poisoned_spool(tmp_path)
    up = Uploader(spool, collector.url, PROBE, KEY, batch_size=3, backoff=Backoff(600, 600),
                  rng=random.Random(1), idle_s=0.01)
    stop = trio.Event()
    stop.set()
    with trio.fail_after(20):  # one back-off would be up to 600 s
        await up.run(stop)
    assert collector.seqs() == list(range(2, 11))
    assert spool.set_aside_counts() == {"refused": (1, 1)}


async def test_single_result_too_large_is_set_aside(tmp_path: Path) -> None:
    store = open_store(tmp_path / "collector.db")
    app = Collector(store, Authenticator(KeyRing({PROBE: [KEY]})), max_body=200)
    spool = _spool(tmp_path, 3)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        [url] = await nursery.start(lambda task_status: serve(
            app, "127.0.0.1:0", shutdown_trigger=stop.wait, task_status=task_status))
        async with httpx.AsyncClient() as client:
            assert await _uploader(spool, url).upload_pending(client) == 0
        stop.set()
    store.close()
    assert _queue(spool.status()) == (0, {"too_large": (3, 3)})
    [detail] = {r[0] for r in spool._db.execute("SELECT detail FROM rejected")}
    assert detail.startswith("HTTP 413: ")


async def test_wrong_collector_url_is_a_config_error_retried_never_set_aside(
        tmp_path: Path, collector: Live, caplog: pytest.LogCaptureFixture) -> None:
    spool = _spool(tmp_path, 10)
    up = _uploader(spool, collector.url + "/ixmeter")  # POST /ixmeter/v1/batches: 404
    async with httpx.AsyncClient() as client:
        assert await up.upload_pending(client) is None
        assert await up.upload_pending(client) is None
        assert (up.errors["config"], up.attempt) == (2, 2)
        assert _queue(spool.status()) == (10, {})
        [record, _again] = [r for r in caplog.records if r.name == "ixmeter.probe.uploader"]
        assert record.levelname == "ERROR"
        assert "HTTP 404" in record.getMessage()
        assert "check collector_url" in record.getMessage()
        up.url = collector.url
        assert await up.upload_pending(client) == 10
    assert collector.seqs() == list(range(10))


@pytest.mark.parametrize(("status", "action"), [
    (200, Action.ACK), (400, Action.SET_ASIDE), (422, Action.SET_ASIDE),
    (413, Action.SPLIT), (401, Action.RETRY), (403, Action.RETRY), (408, Action.RETRY),
    (429, Action.RETRY), (500, Action.RETRY), (502, Action.RETRY), (503, Action.RETRY),
    (599, Action.RETRY), (404, Action.CONFIG), (405, Action.CONFIG), (301, Action.CONFIG),
    (410, Action.CONFIG), (415, Action.CONFIG), (204, Action.CONFIG), (100, Action.CONFIG)])
def test_disposition_of_each_status(status: int, action: Action) -> None:
    assert disposition(status) is action


@contextlib.contextmanager
def _small_filesystem(path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs at ``path`` (root), unmounted on exit."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def _fill(path: Path) -> None:
    """Write zeros to ``path`` until the file system is full."""
    with path.open("wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)
    assert os.statvfs(path).f_bavail == 0


@pytest.mark.root
async def test_store_failure_5xx_is_retried_never_set_aside(tmp_path: Path) -> None:
    """A collector whose disk is full answers 503; the probe keeps the batch and sends it
    again once there is room."""
    with _small_filesystem(tmp_path / "small") as small:
        store = open_store(small / "collector.db")
        app = Collector(store, Authenticator(KeyRing({PROBE: [KEY]})))
        spool = _spool(tmp_path, 200)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            [url] = await nursery.start(lambda task_status: serve(
                app, "127.0.0.1:0", shutdown_trigger=stop.wait, task_status=task_status))
            _fill(small / "filler")
            up = _uploader(spool, url)
            async with httpx.AsyncClient() as client:
                assert await up.upload_pending(client) is None
                assert await up.upload_pending(client) is None
                assert (up.errors["server"], up.attempt) == (2, 2)
                assert _queue(spool.status()) == (200, {})
                text = (await client.get(url + "/metrics")).text
                assert 'ixmeter_collector_requests_total{route="batches",status="503"} 2.0' \
                    in text
                (small / "filler").unlink()
                assert await up.upload_pending(client) == 200
            stop.set()
        assert sorted(r.seq for r in store.read_results(ALL)) == list(range(200))
        store.close()
    assert _queue(spool.status()) == (0, {})


async def test_agent_reports_set_aside_batches_in_heartbeats_and_metrics(
        tmp_path: Path, collector: Live) -> None:
    """The whole probe agent (no measurement jobs: no root needed) with a poisoned spool: the
    rest is uploaded, its ``/metrics`` and its heartbeat carry the set-aside batch, and the
    collector stores the heartbeat's fixed set of counters."""
    spool, _poisoned = _poisoned_spool(tmp_path)  # the agent's spool, before it starts
    spool.close()
    (tmp_path / "probe.key").write_text(KEY.hex() + "\n")
    spec = {"id": "icmp", "method": "icmp", "size": 64, "rate_pps": 1, "tmax_s": 1}
    target = {"spec": "icmp", "dst_addr": "127.0.0.1", "dst_site": "cs-yungu",
              "dst_carrier": "CM"}
    (tmp_path / "probe.yaml").write_text(json.dumps({
        "probe_id": PROBE, "key_file": "probe.key", "collector_url": collector.url,
        "spool": "probe.db", "site": "cs-tianyi-zn", "carrier": "CT", "heartbeat_s": 0.1,
        "specs": [spec], "targets": [target]}))  # JSON is YAML
    cfg = load_config(tmp_path / "probe.yaml")
    agent = Agent(cfg.model_copy(update={"targets": [], "specs": []}))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(agent.run, stop)
        for _ in range(400):  # up to 20 s
            if collector.seqs() == list(range(2, 11)) and _reported(collector):
                break
            await trio.sleep(0.05)
        await agent.flush()  # /metrics reads the spool's counts as of the last flush
        text = agent.metrics_text()
        stop.set()
    assert 'ixmeter_probe_set_aside_batches{reason="refused"} 1' in text.splitlines()
    [health] = collector.store.probe_health()
    assert health.counters is not None
    assert set(health.counters) == set(heartbeat.BY_NAME)
    assert agent.uploader.errors["heartbeat"] == 0


def _reported(collector: Live) -> bool:
    health = collector.store.probe_health()
    return bool(health) and heartbeat.set_aside_totals(health[0].counters) == (1, 1)


def _queue(status: SpoolStatus) -> tuple[int, object]:
    """Depth and set-aside counts (the bytes depend on SQLite's page layout)."""
    return status.depth, dict(status.set_aside)
