"""The probe agent end to end on loopback: ICMP + STAMP + traceroute -> spool -> the real
collector; config validation; the ``ixmeter probe`` CLI with SIGTERM draining cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import yaml

from analyzer.collector.app import Collector
from analyzer.collector.auth import Authenticator
from analyzer.collector.keys import KeyRing
from analyzer.collector.server import serve
from analyzer.store import Query, Store, open_store
from inventory.loader import default_inventory
from ixmeter.cli import main as ixmeter_main
from ixmeter.core.record import Method, Result, Status, from_dict
from probes.agent import Agent
from probes.config import ConfigError, load_config
from probes.stamp.net import open_udp, serve_reflector
from probes.stamp.session import ReflectorConfig, SessionReflector
from tests.analyzer.wire_oracle import read

KEY = b"q" * 32
PROBE = "cs-yungu-ct"
ALL = Query(0, 2**62)
ROOT = Path(__file__).parents[2]


def write_config(tmp_path: Path, url: str, stamp_port: int = 862, **extra: object) -> Path:
    (tmp_path / "probe.key").write_text(KEY.hex() + "\n")
    spec = {"rate_pps": 20, "schedule": "poisson", "tmax_s": 0.5, "ip_versions": [4, 6]}
    cfg = {
        "probe_id": PROBE, "key_file": "probe.key", "collector_url": url, "spool": "spool.db",
        "site": "cs-yungu", "carrier": "CT", "addresses": ["127.0.0.1", "::1"],
        "specs": [{"id": "icmp", "method": "icmp", "size": 64, **spec},
                  {"id": "stamp", "method": "stamp", "size": 44, **spec},
                  {"id": "trace", "method": "traceroute", "size": 60, "rate_pps": 1,
                   "schedule": "periodic", "tmax_s": 1}],
        "targets": [
            {"spec": "icmp", "dst_addr": "127.0.0.1", "dst_site": "cs-yungu", "dst_carrier": "CM"},
            {"spec": "icmp", "dst_addr": "::1", "dst_site": "cs-yungu", "dst_carrier": "CU"},
            {"spec": "stamp", "dst_addr": "127.0.0.1", "dst_site": "cs-yungu",
             "dst_carrier": "CM", "port": stamp_port},
            {"spec": "trace", "dst_addr": "127.0.0.1", "dst_site": "cs-yungu",
             "dst_carrier": "CM"}],
        **extra,
    }
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
async def collector(tmp_path: Path) -> AsyncIterator[tuple[str, Store]]:
    store = open_store(tmp_path / "collector.db")
    app = Collector(store, Authenticator(KeyRing({PROBE: [KEY]})))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        [url] = await nursery.start(lambda task_status: serve(
            app, "127.0.0.1:0", shutdown_trigger=stop.wait, task_status=task_status))
        yield url, store
        stop.set()
    store.close()


@pytest.fixture
async def reflector() -> AsyncIterator[int]:
    sock, _info = open_udp("127.0.0.1", 0)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_reflector, sock, SessionReflector())
            yield sock.getsockname()[1]
            nursery.cancel_scope.cancel()
    finally:
        sock.close()


def _stored(store: Store) -> list[Result]:
    return list(store.read_results(ALL))


@pytest.mark.root
async def test_agent_measures_spools_uploads_and_drains(
        tmp_path: Path, collector: tuple[str, Store], reflector: int) -> None:
    url, store = collector
    agent = Agent(load_config(write_config(tmp_path, url, reflector, metrics_port=0)))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(agent.run, stop)
        await trio.sleep(2.0)
        stop.set()
    stored = _stored(store)
    stats = agent.scheduler.statistics()
    # every probe started is stored at the collector or (slow host) still spooled, none
    # twice; a batch whose answer was cut off by the stop is both (the spool re-sends it, the
    # collector answers it as a duplicate)
    assert len(stored) <= stats.started <= len(stored) + agent._spool_depth
    assert stats.started > 60
    assert len(stored) > 0.5 * stats.started
    by_method = {m: [r for r in stored if r.method is m] for m in Method}
    errors = [(r.error, r.error_detail) for r in by_method[Method.ICMP] if r.error]
    assert not errors
    assert {r.dst_addr for r in by_method[Method.ICMP]} == {"127.0.0.1", "::1"}
    stamp_received = [r for r in by_method[Method.STAMP] if r.status is Status.RECEIVED]
    assert len(stamp_received) >= 0.8 * len(by_method[Method.STAMP]) > 0  # shared CPU
    assert by_method[Method.TRACEROUTE][0].hops[0].addr == "127.0.0.1"
    assert len({(r.method, r.dst_addr, r.seq, r.session) for r in stored}) == len(stored)
    assert agent.metrics.counters()["received"] == len(stored)


async def test_authenticated_stamp_with_a_key_per_reflector(
        tmp_path: Path, collector: tuple[str, Store]) -> None:
    """The issue's finding: one STAMP key served every reflector, in a file format of its own.
    Two authenticated reflectors with different keys, one ``stamp_keys_file`` in the upload
    keys' format (RFC 8762 §4.2.2): both answer; the Type-P records the 112-octet packet."""
    url, store = collector
    keys = {"refl-a": b"A" * 32, "refl-b": b"B" * 32}
    (tmp_path / "stamp-keys.yaml").write_text(
        "".join(f"{k}: {v.hex()}\n" for k, v in keys.items()))
    socks = [open_udp("127.0.0.1", 0)[0] for _ in keys]
    config = write_config(tmp_path, url, stamp_keys_file="stamp-keys.yaml")
    data = yaml.safe_load(config.read_text())
    data["targets"] = [{"spec": "stamp", "dst_addr": "127.0.0.1", "dst_site": site,
                        "dst_carrier": "CM", "port": sock.getsockname()[1], "id": key_id,
                        "authenticated": True}
                       for sock, key_id, site in zip(socks, keys, ["cs-a", "cs-b"], strict=True)]
    data["specs"][1]["id"] = "stamp"
    config.write_text(yaml.safe_dump(data))
    agent = Agent(load_config(config))
    try:
        async with trio.open_nursery() as nursery:
            for sock, key in zip(socks, keys.values(), strict=True):
                await nursery.start(serve_reflector, sock,
                                    SessionReflector(ReflectorConfig(key=key)))
            stop = trio.Event()
            async with trio.open_nursery() as inner:
                await inner.start(agent.run, stop)
                await trio.sleep(1.5)
                stop.set()
            nursery.cancel_scope.cancel()
    finally:
        for sock in socks:
            sock.close()
    stored = [r for r in _stored(store) if r.method is Method.STAMP]
    assert {r.type_p.size for r in stored} == {112}
    for site in ("cs-a", "cs-b"):
        mine = [r for r in stored if r.dst_site == site]
        received = [r for r in mine if r.status is Status.RECEIVED]
        assert mine
        assert len(received) >= 0.8 * len(mine)  # shared CPU


def test_an_authenticated_reflector_without_its_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "stamp-keys.yaml").write_text(f"refl-a: {'aa' * 32}\n")
    config = write_config(tmp_path, "http://127.0.0.1:9", stamp_keys_file="stamp-keys.yaml")
    data = yaml.safe_load(config.read_text())
    data["targets"] = [{"spec": "stamp", "dst_addr": "127.0.0.1", "dst_site": "cs-b",
                        "dst_carrier": "CM", "id": "refl-b", "authenticated": True}]
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="no key for"):
        Agent(load_config(config))


@pytest.mark.root
async def test_metrics_endpoint(tmp_path: Path, collector: tuple[str, Store]) -> None:
    url, _store = collector
    cfg = load_config(write_config(tmp_path, url, metrics_port=0))
    agent = Agent(cfg.model_copy(update={"metrics_port": 1, "targets": cfg.targets[:1]}))
    agent.cfg = agent.cfg.model_copy(update={"metrics_port": 0})
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(agent.run, stop)
        from probes.metrics import serve_metrics
        port = await nursery.start(serve_metrics, "127.0.0.1", 0, agent.metrics_text)
        await trio.sleep(0.8)
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            missing = await client.get(f"http://127.0.0.1:{port}/")
        stop.set()
        nursery.cancel_scope.cancel()
    assert missing.status_code == 404
    assert 'ixmeter_probe_received_total{method="icmp",dst_site="cs-yungu",dst="127.0.0.1"}' \
        in text
    assert "ixmeter_probe_spool_depth " in text
    assert 'ixmeter_probe_last_rtt_seconds{method="icmp",dst="127.0.0.1"}' in text
    assert "# TYPE ixmeter_probe_local_drops_total counter" in text


async def test_collector_down_keeps_everything_in_the_spool(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, "http://127.0.0.1:9", spool_max_age_s=1e9))
    agent = Agent(cfg.model_copy(update={"targets": [], "specs": []}))
    from tests.probes.test_spool import result
    for i in range(30):
        agent.emit(result(i, probe=PROBE))
    stop = trio.Event()
    stop.set()
    async with trio.open_nursery() as nursery:
        await nursery.start(agent.run, stop)
    from probes.spool import Spool
    spool = Spool(tmp_path / "spool.db", PROBE)
    assert spool.depth() == 30
    spool.close()


@pytest.mark.parametrize(("edit", "message"), [
    ({"collector_url": "ftp://x"}, "collector_url"),
    ({"bogus": 1}, "bogus"),
    ({"targets": [{"spec": "nope", "dst_addr": "127.0.0.1", "dst_site": "a",
                   "dst_carrier": "b"}]}, "no spec 'nope'"),
    ({"specs": [{"id": "icmp", "method": "icmp", "size": 20, "rate_pps": 1}]},
     r"specs\.0\.size: .*below the smallest icmp packet"),
])
def test_config_errors_name_the_field(tmp_path: Path, edit: dict[str, object],
                                      message: str) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:1")
    data = yaml.safe_load(path.read_text())
    data.update(edit)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        Agent(load_config(path))


def test_missing_key_file_says_what_to_do(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:1")
    (tmp_path / "probe.key").unlink()
    with pytest.raises(ConfigError, match="ixmeter keys new"):
        Agent(load_config(path))


def test_key_from_a_keys_file(tmp_path: Path) -> None:
    from probes.keys import KeyFileError, read_key

    keys = f"{PROBE}: [{KEY.hex()}, {'ab' * 32}]\nother: {'cd' * 32}\n"
    (tmp_path / "keys.yaml").write_text(keys)
    assert read_key(tmp_path / "keys.yaml", PROBE) == KEY
    with pytest.raises(KeyFileError, match="no key for 'nobody'"):
        read_key(tmp_path / "keys.yaml", "nobody")


def test_config_from_inventory_builds_jobs(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert ixmeter_main(["probe", "config", "--inventory", str(default_inventory()),
                         "--probe", PROBE, "--spool", str(tmp_path / "s.db"),
                         "--key-file", str(tmp_path / "probe.key")]) == 0
    (tmp_path / "probe.key").write_text(KEY.hex())
    (tmp_path / "probe.yaml").write_text(capsys.readouterr().out)
    agent = Agent(load_config(tmp_path / "probe.yaml"))
    methods = {j.method for j in agent.jobs}
    assert methods == {Method.ICMP, Method.STAMP, Method.TRACEROUTE}
    assert {j.type_p.ip_version for j in agent.jobs} == {4, 6}
    assert all(j.src_site == "cs-yungu" and j.dst_addr != "198.18.2.10" for j in agent.jobs)
    agent.spool.close()


def test_missing_icmp_privilege_is_one_clear_line(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    if low <= os.getgid() <= high:
        pytest.skip("datagram ICMP is allowed on this host")
    path = write_config(tmp_path, "http://127.0.0.1:9", icmp_mode="dgram")
    code = ixmeter_main(["probe", "run", "--config", str(path), "--duration", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "ixmeter probe: error: cannot open an ICMP socket (dgram)" in err
    assert "CAP_NET_RAW" in err
    assert "ping_group_range" in err
    assert len(err.strip().splitlines()) == 1


def test_config_unknown_probe(capsys: pytest.CaptureFixture[str]) -> None:
    assert ixmeter_main(["probe", "config", "--inventory", str(default_inventory()),
                         "--probe", "nobody"]) == 2
    assert "not in" in capsys.readouterr().err


@pytest.mark.root
async def test_cli_run_stops_cleanly_on_sigterm(
        tmp_path: Path, collector: tuple[str, Store], reflector: int) -> None:
    url, store = collector
    path = write_config(tmp_path, url, reflector)
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "ixmeter.cli", "probe", "run", "--config", str(path)],
        cwd=ROOT, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    chunks: list[bytes | bytearray] = []
    with trio.fail_after(60):
        while b"running" not in b"".join(chunks):
            chunks.append(await proc.stderr.receive_some(65536))
    await trio.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    with trio.fail_after(30):
        while chunk := await proc.stderr.receive_some(65536):
            chunks.append(chunk)
        await proc.wait()
    await proc.stderr.aclose()
    err = b"".join(chunks).decode()
    assert proc.returncode == 0, err
    sent = int(err.split(" probes sent")[0].rsplit(" ", 1)[1])
    depth = int(err.split("spool depth ")[1].split()[0])
    assert len(_stored(store)) + depth == sent > 0  # depth is 0 unless the host is very slow


def test_probe_side_imports_stay_light() -> None:
    """The probe host needs no server extra: no analyzer, dashboard, numpy, Dash or Plotly."""
    code = ("import sys, probes.agent, probes.cli; print(sorted({m.split('.')[0] for m in "
            "sys.modules} & {'numpy', 'dash', 'plotly', 'analyzer', 'dashboard', 'scapy', "
            "'psycopg', 'prometheus_client', 'starlette'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


@pytest.mark.root
@pytest.mark.slow
def test_agent_in_a_testbed_host_from_the_inventory(tmp_path: Path) -> None:
    """``ixmeter probe config`` + ``probe run`` inside an emulated host: jobs come from the
    inventory, ICMP to the hosts that exist is received over v4 and v6, nothing is lost on the
    way to the spool while the collector is unreachable."""
    api = pytest.importorskip("testbed.api")
    from probes.spool import Spool

    key = tmp_path / "probe.key"
    key.write_text(KEY.hex())
    with api.Testbed.up(default_inventory(), "direct", sites=["cs-yungu"],
                        instance=f"ag{os.getpid() % 100000}") as tb:
        cfg = tb.exec(PROBE, [sys.executable, "-m", "ixmeter.cli", "probe", "config",
                              "--inventory", str(default_inventory()), "--probe", PROBE,
                              "--spool", str(tmp_path / "spool.db"), "--key-file", str(key),
                              "--collector", "http://127.0.0.1:9", "--metrics-port", "0"],
                      check=True).stdout
        (tmp_path / "probe.yaml").write_text(cfg)
        run = tb.exec(PROBE, [sys.executable, "-m", "ixmeter.cli", "probe", "run", "--config",
                              str(tmp_path / "probe.yaml"), "--duration", "6"], timeout=120)
    assert run.returncode == 0, run.stderr
    sent = int(run.stderr.split(" probes sent")[0].rsplit(" ", 1)[1])
    spool = Spool(tmp_path / "spool.db", PROBE)
    results = []
    while (batch := spool.next_batch() or spool.seal(100_000)) is not None:
        results += [r.to_dict() for r in read(batch.body)[2]]
        spool.ack(batch.batch_id)
    spool.close()
    missing = sent - len(results)
    assert missing == 0, (sent, len(results), run.stderr[-2000:])
    assert sent > 100
    here = {(r["dst_carrier"], r["type_p"]["ip_version"]) for r in results
            if r["method"] == "icmp" and r["status"] == "received"}
    # 1 probe/s Poisson: a path may (rarely) draw no probe in 6 s, so allow one to be missing
    assert len(here & {("CM", 4), ("CM", 6), ("CU", 4), ("CU", 6)}) >= 3, here


class _Recording(SessionReflector):
    """A reflector that remembers each test packet's source address."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def prepare(self, data: bytes, source: Any, rx_ns: int, ttl: int | None,
                now_mono_ns: int, tos: int | None = None) -> Any:
        self.sources.append(source[0])
        return super().prepare(data, source, rx_ns, ttl, now_mono_ns, tos)


@pytest.mark.root
async def test_sockets_leave_from_the_inventory_source_address(
        tmp_path: Path, collector: tuple[str, Store]) -> None:
    """The issue's finding: sockets were not bound to the inventory's source address (STAMP
    records carried ``src_addr="*"``). 127.0.0.2 is a second address of ``lo``."""
    url, store = collector
    sock, _info = open_udp("127.0.0.1", 0)
    reflector = _Recording()
    sniff = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sniff.setblocking(False)
    config = write_config(tmp_path, url, sock.getsockname()[1],
                          addresses=["127.0.0.2", "::1"])
    agent = Agent(load_config(config))
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_reflector, sock, reflector)
            stop = trio.Event()
            async with trio.open_nursery() as inner:
                await inner.start(agent.run, stop)
                await trio.sleep(1.5)
                stop.set()
            nursery.cancel_scope.cancel()
        requests = set()
        with contextlib.suppress(BlockingIOError):
            while packet := sniff.recv(65535):
                if packet[20] == 8:  # echo request (RFC 792): its IPv4 source
                    requests.add(socket.inet_ntoa(packet[12:16]))
    finally:
        sock.close()
        sniff.close()
    v4 = [r for r in _stored(store) if r.type_p.ip_version == 4]
    assert {r.method for r in v4} == set(Method)
    assert {r.src_addr for r in v4} == {"127.0.0.2"}
    assert set(reflector.sources) == {"127.0.0.2"}
    assert requests == {"127.0.0.2"}


@pytest.mark.root
async def test_kill_9_loses_at_most_the_group_commit_of_answered_probes(tmp_path: Path) -> None:
    """The issue's finding: results were emitted only at Tmax, so ``kill -9`` lost the last
    Tmax + 0.2 s of results, answered ones included. With Tmax 30 s, everything answered more
    than hold (0.1 s) + group commit (0.2 s) before the kill must be in the spool."""
    path = write_config(tmp_path, "http://127.0.0.1:9")
    data = yaml.safe_load(path.read_text())
    data["specs"][0]["tmax_s"] = 30
    data["targets"] = data["targets"][:1]  # ICMP to 127.0.0.1 at 20/s
    path.write_text(yaml.safe_dump(data))
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "ixmeter.cli", "probe", "run", "--config", str(path)],
        cwd=ROOT, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    chunks: list[bytes | bytearray] = []
    with trio.fail_after(60):
        while b"running" not in b"".join(chunks):
            chunks.append(await proc.stderr.receive_some(65536))
    await trio.sleep(3.0)
    killed_at = time.time_ns()
    proc.kill()
    await proc.wait()
    await proc.stderr.aclose()
    from probes.spool import Spool
    spool = Spool(tmp_path / "spool.db", PROBE)
    kept = [from_dict(json.loads(body)) for (body,) in
            spool._db.execute("SELECT body FROM results").fetchall()]
    spool.close()
    received = [r for r in kept if r.status is Status.RECEIVED]
    assert len(received) >= 30  # about 60 sent in 3 s
    assert max(r.sent_at_ns for r in received) > killed_at - 1_000_000_000


@pytest.mark.root
async def test_a_full_disk_is_counted_and_measuring_goes_on(tmp_path: Path) -> None:
    """The issue's finding: a full disk ended the agent with a SQLite error. Now the agent
    holds what it cannot write, keeps measuring, counts it, and writes it once there is room."""
    from tests.probes.test_uploader import _fill, _small_filesystem

    with _small_filesystem(tmp_path / "small") as small:
        path = write_config(tmp_path, "http://127.0.0.1:9", spool=str(small / "spool.db"))
        data = yaml.safe_load(path.read_text())
        data["specs"][0].update(rate_pps=100, size=1400)
        data["targets"] = data["targets"][:1]
        path.write_text(yaml.safe_dump(data))
        agent = Agent(load_config(path))
        _fill(small / "filler")
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(agent.run, stop)
            await trio.sleep(2.0)
            assert agent.spool_errors > 0
            assert agent.held
            assert agent.spool_status().depth >= len(agent.held)
            (small / "filler").unlink()
            await trio.sleep(1.0)
            assert not agent.held
            assert agent.spool.depth() > 100
            stop.set()
    assert agent.scheduler.statistics().started > 250
