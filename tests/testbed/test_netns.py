"""The real testbed: namespaces, TUN devices and the emulator daemon (root only).

Bounds are chosen so they cannot flake: the emulator's own RNG is seeded per path, so loss
counts are reproducible, and delay checks allow milliseconds where the emulator's error is
tens of microseconds.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from inventory.loader import default_inventory, load
from inventory.schema import Selector
from inventory.topology import Topology
from testbed import daemon, netns
from testbed.api import Testbed
from testbed.profiles import BUILTIN, JitterSpec, LossSpec, Override, PathClass
from tests.conftest import require_tool

pytestmark = pytest.mark.root

SITES = ["cs-yungu", "cz-ezone"]
FLAT = PathClass(jitter=JitterSpec(), loss=LossSpec())
PROFILE = BUILTIN["direct"].model_copy(update={
    "name": "test", "inter": FLAT, "intra": FLAT, "overrides": [
        Override(src=Selector(sites=["cs-yungu"], carriers=["CT"]),
                 dst=Selector(sites=["cs-yungu"], carriers=["CM"]), one_way_ms=5.0),
        Override(src=Selector(sites=["cs-yungu"], carriers=["CT"]),
                 dst=Selector(sites=["cs-yungu"], carriers=["CU"]), one_way=True,
                 loss=LossSpec(rate=0.2)),
    ]})


@pytest.fixture(scope="module")
def tb() -> Iterator[Testbed]:
    with Testbed.up(default_inventory(), PROFILE, sites=SITES,
                    instance=f"pt{os.getpid() % 100000}") as bed:
        yield bed


def _rtts(out: str) -> list[float]:
    return [float(x) for x in re.findall(r"time=([\d.]+) ms", out)]


def test_hosts_have_namespaces_and_addresses(tb: Testbed) -> None:
    assert sorted(tb.hosts) == sorted(f"{s}-{c}" for s in SITES for c in ("ct", "cm", "cu"))
    names = netns.namespaces(f"ixm-{tb.instance}-")
    assert names == sorted(h.namespace for h in tb.hosts.values())
    out = tb.exec("cs-yungu-ct", ["ip", "-o", "addr", "show"], check=True).stdout
    assert "198.18.2.10/32" in out
    assert "2001:2:0:1001::10/128" in out
    assert "127.0.0.1/8" in out
    sysctl = tb.exec("cs-yungu-ct", ["cat", "/proc/sys/net/ipv4/icmp_ratelimit",
                                     "/proc/sys/net/ipv4/ping_group_range"], check=True).stdout
    assert sysctl.split() == ["0", "0", "2147483647"]


@pytest.mark.parametrize("family", [4, 6])
def test_ping_rtt_matches_configured_delay(tb: Testbed, family: int) -> None:
    require_tool("ping")
    dst = tb.hosts["cs-yungu-cm"].address(family)
    out = tb.exec("cs-yungu-ct", ["ping", f"-{family}", "-n", "-c", "30", "-i", "0.02", dst],
                  timeout=30).stdout
    rtts = _rtts(out)
    assert len(rtts) == 30
    assert min(rtts) >= 10.0 - 0.1  # never faster than configured (ping prints 0.1 ms steps)
    assert statistics.median(rtts) <= 10.0 + 1.5


def test_arrivals_are_stamped_by_the_kernel(tb: Testbed) -> None:
    """Each packet's delay counts from the kernel's stamp of its arrival (a packet socket per
    host), not from when the emulator got round to reading it; the stamps precede the reads
    and none needed the read-time fallback."""
    require_tool("ping")
    dst = tb.hosts["cs-yungu-cm"].address(4)
    tb.exec("cs-yungu-ct", ["ping", "-n", "-q", "-c", "10", "-i", "0.01", dst], timeout=30)
    status = tb.status()
    assert status["arrival"] == "kernel timestamp (packet socket)"
    assert status["advance_us"] == 0
    assert status["stamp_fallbacks"] == 0
    assert status["tap_drops"] == 0
    wait = status["read_wait_us"]
    assert wait["n"] >= 20
    assert wait["min"] >= -100  # allows only the clock-read error (realtime_offset_ns)


def test_loss_within_binomial_interval(tb: Testbed) -> None:
    require_tool("ping")
    n = 500
    out = tb.exec("cs-yungu-ct", ["ping", "-4", "-n", "-q", "-c", str(n), "-i", "0.004", "-W",
                                  "1", tb.hosts["cs-yungu-cu"].v4], timeout=60).stdout
    received = int(re.search(r"(\d+) received", out).group(1))  # type: ignore[union-attr]
    # Configured 20 % forward loss, none back: lost ~ Binomial(500, 0.2); 99.9 % interval
    # (normal approximation, z = 3.29) is 100 +- 29.
    assert 100 - 30 <= n - received <= 100 + 30


@pytest.mark.parametrize("family", [4, 6])
def test_traceroute_sees_exchange_point_then_hub(tb: Testbed, family: int) -> None:
    require_tool("traceroute")
    topo = Topology(load(default_inventory()))
    dst = tb.hosts["cz-ezone-cm"].address(family)

    def sites_on_route() -> list[str | None]:
        out = tb.exec("cs-yungu-ct", ["traceroute", f"-{family}", "-n", "-q", "1", "-w", "2",
                                      dst], timeout=60).stdout
        hops = re.findall(r"^\s*\d+\s+([0-9a-f.:]+)\s", out, re.M)
        assert hops[-1] == dst, out
        return [topo.site_of_address(h) for h in hops[:-1]]

    assert "cs-ixp" in sites_on_route()
    try:
        assert tb.set_profile("baseline") == "baseline"
        sites = set(sites_on_route())
        assert sites & {"wh-ixp", "gz-ixp"}
        assert "cs-ixp" not in sites
    finally:
        tb.set_profile(PROFILE)


def test_mtr_sees_the_route(tb: Testbed) -> None:
    require_tool("mtr")
    out = tb.exec("cs-yungu-ct", ["mtr", "-n", "-r", "-c", "1", tb.hosts["cz-ezone-cm"].v4],
                  timeout=60).stdout
    assert "198.19.0.1" in out  # cs-ixp, CT side
    assert "198.18.68.10" in out


def test_cli_status_paths_exec(tb: Testbed) -> None:
    def cli(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "ixmeter.cli", "testbed", *args,
                               "--instance", tb.instance] if args[0] != "exec" else
                              [sys.executable, "-m", "ixmeter.cli", "testbed", "exec",
                               "--instance", tb.instance, *args[1:]],
                              capture_output=True, text=True, check=True, timeout=30).stdout

    assert "profile test" in cli("status")
    assert "cs-ixp-CT" in cli("paths")
    assert "198.18.68.10" in cli("exec", "cz-ezone-cm", "--", "ip", "-4", "-o", "addr")
    history = tb.status()["history"]
    assert history[0]["profile"] == "test"


def test_kill9_is_cleaned_by_next_up_and_down_leaves_nothing() -> None:
    instance = f"pk{os.getpid() % 100000}"
    bed = Testbed.up(profile="direct", sites=["cs-yungu"], instance=instance)
    pid = int(bed.state["pid"])
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if daemon.read_state(instance) is None:
            break
        time.sleep(0.05)
    assert netns.namespaces(f"ixm-{instance}-")  # the crash left namespaces behind
    bed = Testbed.up(profile="direct", sites=["cs-yungu"], instance=instance)
    assert int(bed.state["pid"]) != pid
    bed.down()
    assert netns.namespaces(f"ixm-{instance}-") == []
    assert not daemon.rundir(instance).exists()
    for _ in range(100):  # init reaps the exited daemon shortly after
        if not os.path.exists(f"/proc/{bed.state['pid']}"):
            break
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{bed.state['pid']}")


def test_userns_mode_runs_and_dies_with_its_daemon() -> None:
    if not netns.userns_available():
        pytest.skip("this kernel does not allow unshare -Urnm")
    instance = f"pu{os.getpid() % 100000}"
    bed = Testbed.up(profile="direct", sites=["cs-yungu"], instance=instance, mode="userns")
    try:
        assert bed.mode == "userns"
        out = bed.exec("cs-yungu-ct", ["ping", "-n", "-c", "2", "-i", "0.2",
                                       bed.hosts["cs-yungu-cm"].v4], timeout=30).stdout
        assert len(_rtts(out)) == 2
        assert netns.namespaces(f"ixm-{instance}-") == []  # invisible outside its namespaces
        os.kill(int(bed.state["pid"]), signal.SIGKILL)  # namespaces die with the daemon
        for _ in range(100):
            if daemon.read_state(instance) is None:
                break
            time.sleep(0.05)
        assert daemon.read_state(instance) is None
    finally:
        bed.down()
    assert not daemon.rundir(instance).exists()


def test_schedule_switches_profile_at_its_time() -> None:
    instance = f"ps{os.getpid() % 100000}"
    with Testbed.up(profile="baseline", sites=["cs-yungu"], instance=instance,
                    schedule="0.5:direct") as bed:
        for _ in range(100):
            if bed.status()["profile"] == "direct":
                break
            time.sleep(0.05)
        history = bed.status()["history"]
    assert [h["profile"] for h in history] == ["baseline", "direct"]
    assert history[1]["why"] == "schedule@0.5s"
    assert 0.4 <= history[1]["after_s"] < 3.0


def test_duplication_reaches_the_host(tb: Testbed) -> None:
    require_tool("ping")
    dup = PROFILE.model_copy(update={"name": "dup", "overrides": [
        Override(src=Selector(sites=["cs-yungu"], carriers=["CT"]),
                 dst=Selector(sites=["cz-ezone"], carriers=["CT"]), one_way=True,
                 duplicate=0.2)]})
    try:
        tb.set_profile(dup)
        out = tb.exec("cs-yungu-ct", ["ping", "-4", "-n", "-c", "200", "-i", "0.005", "-W", "1",
                                      tb.hosts["cz-ezone-ct"].v4], timeout=60).stdout
    finally:
        tb.set_profile(PROFILE)
    dups = int(re.search(r"\+(\d+) duplicates", out).group(1))  # type: ignore[union-attr]
    # Binomial(200, 0.2): mean 40, 99.9 % interval (z = 3.29) 40 +- 19.
    assert 40 - 20 <= dups <= 40 + 20
    assert "200 received" in out
