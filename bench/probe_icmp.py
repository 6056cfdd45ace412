"""ICMP probe benchmark on loopback: accuracy, capacity, memory, and icmplib for comparison.

Run ``.venv/bin/python -m bench.probe_icmp`` (root, about 1 minute) or add ``--full`` (about 4
minutes). Sections (each in a fresh child process so RSS and CPU are its own):

1. ``rtt`` — ixmeter's pinger, iputils ``ping`` and ``fping`` to 127.0.0.1 at the same time,
   100 probes/s each; median and p99 RTT of each and ixmeter minus each reference.
1b. ``testbed`` (``--testbed``, root) — the same three side by side on an emulated 5 ms + 5 ms
   path, and loss/duplicates counted against the configured 10 % / 5 % (binomial interval).
2. ``rate`` — the scheduler + ICMP prober over 100 loopback targets at rising aggregate rates;
   local drops (send errors, queue full, late) plus loss (all local on loopback), CPU share of
   one core; then ``fping`` at the same rates. The highest rate with <= 0.1 % drops is the
   figure one core sustains (CPU < 100 %).
3. ``memory`` — resident memory with 1,000 targets at 1 probe/s each, and of the bare import.
4. ``icmplib`` — ``icmplib.multiping`` (asyncio, user-space ``time()`` stamps) versus ixmeter's
   pinger on the same 100 targets x 10 probes: wall time, CPU and median RTT.

The machine was shared with other work while these ran: treat CPU figures as upper bounds.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import trio

ROOT_TARGETS = [f"127.0.{i // 250}.{i % 250 + 1}" for i in range(1000)]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _pct(values: list[float], p: float) -> float:
    """Percentile by the smallest value with F(x) >= p (RFC 2330 §11.3)."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))]


# --- 1. RTT against ping and fping ----------------------------------------------------------


async def _own_rtts(n: int, interval: float, dst: str = "127.0.0.1") -> list[float]:
    """RTTs in us of ``n`` echoes (NaN: lost; -1 marks each duplicate copy, -2 an error)."""
    from probes.icmp.pinger import open_pinger
    from probes.icmp.session import Outcome

    rtts: list[float] = []

    def keep(o: Outcome) -> None:
        rtts.append(o.rtt_ns / 1e3 if o.rtt_ns is not None else
                    -2.0 if o.error is not None else math.nan)
        rtts.extend([-1.0] * o.dup)

    async with open_pinger(socket.AF_INET, keep) as p:
        start = trio.current_time()
        for i in range(n):
            await trio.sleep_until(start + i * interval)
            p.send(dst, 64, 1_000_000_000)
        await p.drain()
    return rtts


def section_rtt(n: int) -> dict[str, Any]:
    ping = subprocess.Popen(["ping", "-n", "-i", "0.01", "-c", str(n), "127.0.0.1"],
                            stdout=subprocess.PIPE, text=True)
    fping = subprocess.Popen(["fping", "-C", str(n), "-p", "10", "-t", "1000", "-q",
                              "127.0.0.1"],
                             stderr=subprocess.PIPE, text=True)
    own = trio.run(_own_rtts, n, 0.01)
    ping_out, _ = ping.communicate()
    _, fping_err = fping.communicate()
    return _with_ping_mean(_rtt_rows(own, _ping_rtts(ping_out), _fping_rtts(fping_err)),
                           ping_out)


# --- 1b. on the emulated carrier network (root) ------------------------------------------------

OWN = ("import json, sys, trio; from bench.probe_icmp import _own_rtts; "
       "print(json.dumps(trio.run(_own_rtts, int(sys.argv[2]), 0.01, sys.argv[1])))")


def section_testbed(n: int) -> dict[str, Any]:
    """Same path, same time, through the link emulator: 5 ms one way on CT->CM; 10 % one-way
    loss and 5 % duplication on CT->CU (loss checked against its binomial interval)."""
    from inventory.loader import default_inventory
    from inventory.schema import Selector
    from testbed.api import Testbed
    from testbed.profiles import BUILTIN, LossSpec, Override, PathClass

    flat = PathClass()
    ct = Selector(sites=["cs-yungu"], carriers=["CT"])
    profile = BUILTIN["direct"].model_copy(update={"name": "bench", "inter": flat,
                                                   "intra": flat, "overrides": [
        Override(src=ct, dst=Selector(sites=["cs-yungu"], carriers=["CM"]), one_way_ms=5.0),
        Override(src=ct, dst=Selector(sites=["cs-yungu"], carriers=["CU"]), one_way=True,
                 loss=LossSpec(rate=0.1), duplicate=0.05)]})
    with Testbed.up(default_inventory(), profile, sites=["cs-yungu"], instance="bprobe") as tb:
        dst = tb.hosts["cs-yungu-cm"].v4
        pairs = {}
        for tool, argv, stream in (
                ("iputils ping", ["ping", "-n", "-i", "0.01", "-c", str(n), dst], "stdout"),
                ("fping", ["fping", "-C", str(n), "-p", "10", "-t", "1000", "-q", dst],
                 "stderr")):
            ref = tb.popen("cs-yungu-ct", argv, text=True, **{stream: subprocess.PIPE})
            own = json.loads(tb.python("cs-yungu-ct", OWN, dst, str(n), timeout=600).stdout)
            out, err = ref.communicate()
            pairs[tool] = (own, out if stream == "stdout" else err)
        lossy = json.loads(tb.python("cs-yungu-ct", OWN, tb.hosts["cs-yungu-cu"].v4,
                                     str(n), timeout=600).stdout)
    rows = {"with ping": _with_ping_mean(_rtt_rows(pairs["iputils ping"][0], _ping_rtts(
        pairs["iputils ping"][1]), []), pairs["iputils ping"][1]), "with fping": _rtt_rows(
        pairs["fping"][0], [], _fping_rtts(pairs["fping"][1]))}
    lost = sum(1 for x in lossy if math.isnan(x))
    half = 3.29 * math.sqrt(n * 0.1 * 0.9)  # 99.9 % normal approximation of Binomial(n, 0.1)
    return {"rtt_5ms_each_way": rows, "loss": {
        "n": n, "configured": 0.1, "lost": lost, "interval": [n * 0.1 - half, n * 0.1 + half],
        "within": abs(lost - n * 0.1) <= half,
        "duplicates_counted": sum(1 for x in lossy if x == -1.0), "configured_dup": 0.05,
        "errors": sum(1 for x in lossy if x == -2.0)}}


def _ping_rtts(text: str) -> list[float]:
    return [float(x) * 1e3 for x in re.findall(r"time=([\d.]+) ms", text)]


def _with_ping_mean(rows: dict[str, Any], text: str) -> dict[str, Any]:
    """Use ping's own summary mean (us resolution; per-packet times print 0.1 ms steps)."""
    avg = re.search(r"= [\d.]+/([\d.]+)/", text)
    if avg and "iputils ping" in rows:
        row = rows["iputils ping"]
        row["mean_us"] = float(avg.group(1)) * 1e3
        row["ixmeter_minus_mean_us"] = rows["ixmeter (kernel TX+RX)"]["mean_us"] - row["mean_us"]
    return rows


def _fping_rtts(text: str) -> list[float]:
    return [float(x) * 1e3 for x in text.split(":", 1)[1].split() if x != "-"]


def _rtt_rows(own: list[float], ping_rtts: list[float], fping_rtts: list[float]
              ) -> dict[str, Any]:
    own = [x for x in own if x >= 0]  # drop NaN (lost) and duplicate markers
    rows: dict[str, Any] = {}
    for name, values in (("ixmeter (kernel TX+RX)", own), ("iputils ping", ping_rtts),
                         ("fping", fping_rtts)):
        if values:
            rows[name] = {"n": len(values), "median_us": statistics.median(values),
                          "mean_us": statistics.fmean(values), "p99_us": _pct(values, 99)}
    base = rows["ixmeter (kernel TX+RX)"]
    for name in ("iputils ping", "fping"):
        if name not in rows:
            continue
        rows[name]["ixmeter_minus_median_us"] = base["median_us"] - rows[name]["median_us"]
        rows[name]["ixmeter_minus_mean_us"] = base["mean_us"] - rows[name]["mean_us"]
        rows[name]["ixmeter_minus_p99_us"] = base["p99_us"] - rows[name]["p99_us"]
    return rows


# --- 2. rate one core sustains ---------------------------------------------------------------


async def _own_rate(rate: float, seconds: float, targets: int) -> dict[str, Any]:
    from ixmeter.core.record import Method, Result, Status, TypeP
    from probes.methods.icmp import IcmpProber
    from probes.scheduler import Job, Scheduler

    results: list[Result] = []
    prober = IcmpProber(results.append)
    jobs = [Job("b", Method.ICMP, "p", "s", "c", "d", "e", "0.0.0.0", dst,
                TypeP("icmp", 4, 64), rate / targets, 1_000_000_000, "periodic")
            for dst in ROOT_TARGETS[:targets]]
    sched = Scheduler(jobs, {Method.ICMP: prober}, results.append, rng=random.Random(1))
    stop = trio.Event()
    cpu0, wall0 = _cpu(), time.monotonic()
    async with trio.open_nursery() as nursery:
        await nursery.start(prober.run)
        nursery.start_soon(sched.run, stop)
        await trio.sleep(seconds)
        stop.set()
        await prober.drain()
        nursery.cancel_scope.cancel()
    cpu, wall = _cpu() - cpu0, time.monotonic() - wall0 - 1.0  # minus the drain's Tmax
    bad = sum(1 for r in results if r.status is not Status.RECEIVED)
    return {"tool": "ixmeter", "target_pps": rate, "sent": len(results),
            "achieved_pps": len(results) / seconds, "drop_or_loss_pct": 100 * bad / len(results),
            "cpu_pct": 100 * cpu / max(wall, 1e-9),
            "cpu_s_per_1000pps": cpu / max(wall, 1e-9) / (len(results) / seconds) * 1000,
            "local": dict(prober.local_drops()),
            "late_schedule_pct": 100 * sched.statistics().late_schedule / max(1, len(results)),
            "max_lag_ms": sched.statistics().max_lag_ns / 1e6}


def _fping_rate(rate: float, seconds: float, targets: int) -> dict[str, Any]:
    interval_ms = 1000 / rate
    count = max(1, int(seconds * rate / targets))
    cpu0 = _children_cpu()
    wall0 = time.monotonic()
    out = subprocess.run(["fping", "-q", "-c", str(count), "-i", f"{interval_ms:.3f}",
                          "-p", f"{interval_ms * targets:.3f}", "-t", "1000",
                          *ROOT_TARGETS[:targets]], capture_output=True, text=True)
    wall, cpu = time.monotonic() - wall0, _children_cpu() - cpu0
    xmt = rcv = 0
    for m in re.finditer(r"xmt/rcv/%loss = (\d+)/(\d+)/", out.stderr):
        xmt, rcv = xmt + int(m.group(1)), rcv + int(m.group(2))
    if not xmt:
        return {"tool": "fping", "target_pps": rate, "sent": 0,
                "refused": out.stderr.strip().splitlines()[:1]}
    return {"tool": "fping", "target_pps": rate, "sent": xmt, "achieved_pps": xmt / wall,
            "drop_or_loss_pct": 100 * (xmt - rcv) / max(xmt, 1),
            "cpu_pct": 100 * cpu / wall, "cpu_s_per_1000pps": cpu / wall / (xmt / wall) * 1000}


def section_rate(rates: list[float], seconds: float) -> list[dict[str, Any]]:
    rows = [trio.run(_own_rate, r, seconds, 100) for r in rates]
    rows += [_fping_rate(r, seconds, 100) for r in rates]
    return rows


# --- 3. memory -------------------------------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def section_memory(seconds: float) -> dict[str, Any]:
    import probes.agent  # noqa: F401  (what the agent imports, scapy excluded until a trace)

    after_import = _rss_mb()
    row = trio.run(_own_rate, 1000.0, seconds, 1000)
    return {"rss_after_import_mb": after_import, "rss_1000_targets_mb": _rss_mb(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "targets": 1000, "rate_pps": 1000, "run": row}


# --- 4. icmplib ------------------------------------------------------------------------------


def section_icmplib(count: int) -> dict[str, Any]:
    import icmplib

    targets = ROOT_TARGETS[:100]
    cpu0, wall0 = _cpu(), time.monotonic()
    hosts = icmplib.multiping(targets, count=count, interval=0.01, timeout=1,
                              concurrent_tasks=100, privileged=True)
    lib = {"wall_s": time.monotonic() - wall0, "cpu_s": _cpu() - cpu0,
           "received": sum(h.packets_received for h in hosts),
           "median_rtt_us": statistics.median(r * 1e3 for h in hosts for r in h.rtts)}

    async def own() -> list[float]:
        from probes.icmp.pinger import open_pinger

        rtts: list[float] = []
        async with open_pinger(socket.AF_INET, lambda o: rtts.append(
                (o.rtt_ns or 0) / 1e3) if o.rtt_ns else None) as p:
            start = trio.current_time()
            for i in range(count):
                await trio.sleep_until(start + i * 0.01)
                for t in targets:
                    p.send(t, 64, 1_000_000_000)
            await p.drain()
        return rtts

    cpu0, wall0 = _cpu(), time.monotonic()
    rtts = trio.run(own)
    mine = {"wall_s": time.monotonic() - wall0, "cpu_s": _cpu() - cpu0,
            "received": len(rtts), "median_rtt_us": statistics.median(rtts)}
    single = icmplib.ping("127.0.0.1", count=200, interval=0.01, privileged=True)
    own_single = [x for x in trio.run(_own_rtts, 200, 0.01) if x >= 0]
    return {"probes": 100 * count, "icmplib": lib, "ixmeter": mine,
            "one_target_200_probes": {"icmplib_median_rtt_us": statistics.median(
                r * 1e3 for r in single.rtts), "ixmeter_median_rtt_us": statistics.median(
                own_single)}}


# --- driver ----------------------------------------------------------------------------------


def _child(section: str, size: list[str]) -> Any:
    out = subprocess.run([sys.executable, "-m", "bench.probe_icmp", "--section", section, *size],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description="ICMP probe benchmark on loopback")
    ap.add_argument("--full", action="store_true", help="longer runs, more rates")
    ap.add_argument("--smoke", action="store_true", help="seconds (the suite runs this)")
    ap.add_argument("--section", choices=["rtt", "testbed", "rate", "memory", "icmplib"])
    ap.add_argument("--testbed", action="store_true",
                    help="also the emulated carrier network section (root, ~1 min)")
    args = ap.parse_args()
    full, smoke = args.full, args.smoke
    runs: dict[str, Callable[[], Any]] = {
        "rtt": lambda: section_rtt(3000 if full else 50 if smoke else 500),
        "rate": lambda: section_rate([2000, 5000, 10000, 20000, 30000] if full else [1000]
                                     if smoke else [2000, 5000, 10000],
                                     10.0 if full else 0.5 if smoke else 3.0),
        "memory": lambda: section_memory(20.0 if full else 1.0 if smoke else 5.0),
        "icmplib": lambda: section_icmplib(20 if full else 3 if smoke else 10),
        "testbed": lambda: section_testbed(3000 if full else 1000),
    }
    if args.section:
        print(json.dumps(runs[args.section]()))
        return
    for name in runs:
        if name == "testbed" and not args.testbed:
            continue
        print(f"## {name}")
        size = ["--full"] if full else ["--smoke"] if smoke else []
        print(json.dumps(_child(name, size), indent=1))


if __name__ == "__main__":
    main()
