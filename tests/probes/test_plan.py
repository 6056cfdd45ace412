"""The probe's plan from the collector (signed, cached, used while the collector is down),
reloaded without a restart (SIGHUP, a refresh), with rotated keys."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import yaml

from analyzer.collector.app import Collector
from analyzer.collector.auth import Authenticator
from analyzer.collector.keys import KeyRing
from analyzer.collector.server import serve
from analyzer.store import Query, Store, open_store
from inventory.loader import load
from ixmeter.core import plan as plan_format
from ixmeter.core.record import Method
from probes.agent import Agent
from probes.config import load_config
from tests.conftest import require_tool
from tests.probes.test_agent import write_config

KEY, NEW_KEY = b"k" * 32, b"n" * 32
PROBE = "lo-a-ct"
ROOT = Path(__file__).parents[2]
ALL = Query(0, 2**62)

# A loopback inventory: the probe at 127.0.0.1, a target at 127.0.0.2 (both on lo).
INVENTORY = """
version: 1
name: loopback
provinces: [{id: HN, name: {zh: 湖南省, en: Hunan}, timezone: Asia/Shanghai}]
carriers:
  - {id: CT, name: {zh: 中国电信, en: China Telecom}, prefixes: [127.0.0.0/8]}
  - {id: CM, name: {zh: 中国移动, en: China Mobile}}
cities: [{id: changsha, name: {zh: 长沙, en: Changsha}, province: HN, lat: 28.2, lon: 112.9}]
sites:
  - {id: lo-a, kind: data_centre, name: {zh: 甲, en: A}, city: changsha, lat: 28.2, lon: 112.9,
     carriers: [CT, CM]}
probes:
  - {id: lo-a-ct, site: lo-a, carrier: CT, addresses: [127.0.0.1], methods: [icmp]}
targets:
  - {id: lo-a-cm, site: lo-a, carrier: CM, addresses: [127.0.0.2], reflector: null}
specs:
  - {id: icmp-mesh, method: icmp, rate_pps: 20, size: 64, tmax_s: 0.5, ip_versions: [4],
     destinations: {carriers: [CM]}}
"""


@pytest.fixture
async def collector(tmp_path: Path) -> AsyncIterator[tuple[str, Store, Collector]]:
    (tmp_path / "inv.yaml").write_text(INVENTORY)
    store = open_store(tmp_path / "collector.db")
    app = Collector(store, Authenticator(KeyRing({PROBE: [KEY]})), load(tmp_path / "inv.yaml"))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        [url] = await nursery.start(lambda task_status: serve(
            app, "127.0.0.1:0", shutdown_trigger=stop.wait, task_status=task_status))
        yield url, store, app
        stop.set()
    store.close()


def _config(tmp_path: Path, url: str) -> Path:
    (tmp_path / "probe.key").write_text(KEY.hex())
    (tmp_path / "probe.key").chmod(0o600)
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump({"probe_id": PROBE, "key_file": "probe.key",
                                    "collector_url": url, "spool": "spool.db",
                                    "plan_refresh_s": 3600}))
    return path


async def _run(agent: Agent, seconds: float) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(agent.run, stop)
        await trio.sleep(seconds)
        stop.set()


@pytest.mark.root
async def test_the_plan_comes_from_the_collector_and_is_cached(
        tmp_path: Path, collector: tuple[str, Store, Collector]) -> None:
    """The issue's finding: the probe read its inventory once from a local file and never
    fetched ``GET /v1/probes/{id}/inventory``."""
    url, store, _app = collector
    config = load_config(_config(tmp_path, url))
    assert config.source == "collector"
    agent = Agent(config)
    assert agent.jobs == []  # nothing cached yet
    await _run(agent, 1.5)
    assert {(j.method, j.dst_addr) for j in agent.jobs} == {(Method.ICMP, "127.0.0.2")}
    assert {r.dst_addr for r in store.read_results(ALL)} == {"127.0.0.2"}
    cache = config.plan_cache_path
    assert cache.exists()
    assert cache.stat().st_mode & 0o077 == 0

    down = Agent(config.model_copy(update={"collector_url": "http://127.0.0.1:9"}))
    assert [j.dst_addr for j in down.jobs] == ["127.0.0.2"]  # used while unreachable
    down.spool.close()

    cached = json.loads(cache.read_text())
    cached["body"] = cached["body"].replace("127.0.0.2", "127.0.0.3")
    cache.write_text(json.dumps(cached))
    with pytest.raises(plan_format.PlanError, match="not signed with any key"):
        Agent(config)


@pytest.mark.root
async def test_reload_applies_new_targets_and_a_rotated_key_without_restart(
        tmp_path: Path) -> None:
    """The issue's findings: no reload (changing targets meant touching every host) and key
    rotation needed a restart (the key was read once)."""
    store = open_store(tmp_path / "collector.db")
    keys = KeyRing({"cs-yungu-ct": [KEY]})
    app = Collector(store, Authenticator(keys))
    path = write_config(tmp_path, "http://x")
    data = yaml.safe_load(path.read_text())
    (tmp_path / "probe.key").write_text(KEY.hex())
    data["targets"] = data["targets"][:1]  # ICMP to 127.0.0.1
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        [url] = await nursery.start(lambda task_status: serve(
            app, "127.0.0.1:0", shutdown_trigger=stop.wait, task_status=task_status))
        data["collector_url"] = url
        path.write_text(yaml.safe_dump(data))
        agent = Agent(load_config(path), config_path=path)
        agent.uploader.idle_s = 0.2
        probe_stop = trio.Event()
        async with trio.open_nursery() as inner:
            await inner.start(agent.run, probe_stop)
            await trio.sleep(1.0)
            data["targets"] = [dict(data["targets"][0], dst_addr="::1")]
            path.write_text(yaml.safe_dump(data))
            (tmp_path / "probe.key").write_text(NEW_KEY.hex())
            app.auth.keys = KeyRing({"cs-yungu-ct": [NEW_KEY]})  # the old key retired
            agent.request_reload()
            await trio.sleep(1.5)
            probe_stop.set()
        stop.set()
    stored = list(store.read_results(ALL))
    store.close()
    assert agent.reloads >= 1
    assert {j.dst_addr for j in agent.jobs} == {"::1"}
    v6 = [r for r in stored if r.dst_addr == "::1"]
    assert v6  # new target measured, and uploaded with the new key
    assert agent.uploader.errors["auth"] == 0
    assert agent._spool_depth == 0
    last_v4 = max(r.sent_at_ns for r in stored if r.dst_addr == "127.0.0.1")
    assert last_v4 < min(r.sent_at_ns for r in v6) + 600_000_000


@pytest.mark.root
def test_sighup_reloads_the_running_probe(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9")
    data = yaml.safe_load(path.read_text())
    data["targets"] = data["targets"][:1]
    path.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen([sys.executable, "-m", "ixmeter.cli", "probe", "run", "--config",
                             str(path), "-v"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if "running" in line:
                break
        proc.send_signal(signal.SIGHUP)
        for line in proc.stderr:
            if "reload:" in line:
                break
        assert "reload: 1 jobs" in line
        assert proc.poll() is None  # still running
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == 0


def test_the_plan_tells_the_key_rotation_state() -> None:
    from probes.plan import rotation_note

    served = plan_format.verify(plan_format.encode(PROBE, {}, [NEW_KEY, KEY], 1.0), [KEY])
    assert rotation_note(served, NEW_KEY) is None
    note = rotation_note(served, KEY)
    assert note is not None
    assert "newer key" in note
    assert "still accepted" in note


@pytest.mark.root
async def test_probe_check_says_what_is_there(
        tmp_path: Path, collector: tuple[str, Store, Collector]) -> None:
    url, _store, _app = collector
    config = _config(tmp_path, url)
    done = await trio.run_process(
        [sys.executable, "-m", "ixmeter.cli", "probe", "check", "--config", str(config)],
        cwd=ROOT, capture_stdout=True, check=False)
    out = done.stdout.decode()
    assert done.returncode == 0, out
    for line in ("ok   config:", "ok   key:", "ok   spool:", "ok   collector:",
                 "ok   collector plan: 1 targets, signed", "ok   plan: 1 jobs: 1 icmp",
                 "ok   icmp from 127.0.0.1: socket opened and bound"):
        assert line in out, out


def test_probe_check_names_what_is_missing(tmp_path: Path) -> None:
    """No CAP_NET_RAW, a source address the host does not have, no collector."""
    import os

    if os.geteuid() != 0:
        pytest.skip("needs root to drop a capability")
    path = write_config(tmp_path, "http://127.0.0.1:9", icmp_mode="raw",
                        addresses=["192.0.2.55", "::1"])
    capsh = require_tool("capsh")  # Debian: libcap2-bin
    done = subprocess.run([capsh, "--drop=cap_net_raw", "--", "-c",
                           f"{sys.executable} -m ixmeter.cli probe check --config {path}"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any(x.startswith("FAIL icmp from 192.0.2.55") and "CAP_NET_RAW" in x for x in lines)
    assert any(x.startswith("FAIL traceroute from 192.0.2.55") and "CAP_NET_RAW" in x
               for x in lines)
    assert any(x.startswith("FAIL stamp from 192.0.2.55") and "this host's" in x
               for x in lines)
    assert any(x.startswith("FAIL collector") and "unreachable" in x for x in lines)
