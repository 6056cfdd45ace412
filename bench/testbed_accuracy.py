"""Accuracy and capacity of the testbed's link emulator (root only).

    .venv/bin/python -m bench.testbed_accuracy            # ~1 min: accuracy at 1,000 packets/s
    .venv/bin/python -m bench.testbed_accuracy --full     # + capacity sweep on all 39 hosts

Accuracy: paths of 0.5, 5 and 30 ms configured RTT (no jitter) and one path with 1 % loss each
way, pinged round-robin at 1,000 packets/s in aggregate by
 * ``bench.testbed_pinger`` (kernel receive stamps, ns), and
 * ``fping -C N -p P -i 1 -t 1000`` (prints 3 significant digits, so its error is quantised
   to 1 / 10 / 100 us below 1 / 10 / 100 ms), and
 * iputils ``ping -q`` averages at 100 packets/s per path (min and mean to the us).
Error = measured RTT - configured RTT; reported as median and p99 (inverted-CDF percentiles,
RFC 2330 §11.3). Loss: measured round-trip loss against 1 - (1 - p)^2 with its exact
(Clopper-Pearson) 99 % binomial interval.
Capacity: one source pings all other hosts at rising aggregate rates; reports the error and the
emulator's CPU (utime + stime from /proc, % of one core) at each rate.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inventory.loader import default_inventory
from inventory.schema import Selector
from testbed.api import Testbed
from testbed.daemon import DEFAULT_SPIN_US
from testbed.profiles import BUILTIN, JitterSpec, LossSpec, Override, PathClass

SRC = "cs-yungu-ct"
DELAY_PATHS = {"cs-yungu-cm": 0.25, "cs-yungu-cu": 2.5, "cz-ezone-cm": 15.0}  # one-way ms
LOSS_PATH, LOSS_RATE = "cz-ezone-cu", 0.01
FLAT = PathClass(jitter=JitterSpec(), loss=LossSpec())


def _sel(host: str) -> Selector:
    site, carrier = host.rsplit("-", 1)
    return Selector(sites=[site], carriers=[carrier.upper()])


def bench_profile() -> Any:
    overrides = [Override(src=_sel(SRC), dst=_sel(h), one_way_ms=ms)
                 for h, ms in DELAY_PATHS.items()]
    overrides.append(Override(src=_sel(SRC), dst=_sel(LOSS_PATH), one_way_ms=2.5,
                              loss=LossSpec(rate=LOSS_RATE)))
    return BUILTIN["direct"].model_copy(update={"name": "bench", "inter": FLAT, "intra": FLAT,
                                                "overrides": overrides})


def percentile(xs: Sequence[float], p: float) -> float:
    """Smallest x with F(x) >= p (RFC 2330 §11.3; numpy ``inverted_cdf``)."""
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def configured_rtt(tb: Testbed, src: str, dst: str) -> float:
    return float(tb.path(src, dst)["one_way_ms"] + tb.path(dst, src)["one_way_ms"])


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (proc(5) fields 14, 15)


def run_pinger(tb: Testbed, targets: list[str], rate: float, seconds: float) -> dict[str, Any]:
    out = tb.exec(SRC, [sys.executable, "-m", "bench.testbed_pinger", "--targets",
                        ",".join(tb.hosts[t].v4 for t in targets), "--rate", str(rate),
                        "--seconds", str(seconds)], timeout=seconds + 60, check=True).stdout
    by_ip: dict[str, Any] = json.loads(out)["targets"]
    return {t: by_ip[tb.hosts[t].v4] for t in targets}


def summarise(rtt_ms: Sequence[float], sent: int, conf_ms: float) -> dict[str, Any]:
    err_us = [(r - conf_ms) * 1000 for r in rtt_ms]
    return {"configured_rtt_ms": round(conf_ms, 4), "sent": sent, "received": len(rtt_ms),
            "err_min_us": round(min(err_us), 1), "err_median_us": round(percentile(err_us, 50), 1),
            "err_p99_us": round(percentile(err_us, 99), 1)}


def loss_check(sent: int, received: int, p_one_way: float) -> dict[str, Any]:
    from scipy.stats import binomtest

    expected = 1 - (1 - p_one_way) ** 2
    lost = sent - received
    ci = binomtest(lost, sent, expected).proportion_ci(0.99, method="exact")
    return {"sent": sent, "lost": lost, "measured": round(lost / sent, 5),
            "configured": round(expected, 5), "ci99": [round(ci.low, 5), round(ci.high, 5)],
            "configured_inside_ci": bool(ci.low <= expected <= ci.high)}


def accuracy(tb: Testbed, seconds: float, rate: float) -> dict[str, Any]:
    targets = [*DELAY_PATHS, LOSS_PATH]
    pid = int(tb.state["pid"])
    t0 = cpu_ticks(pid)
    res = run_pinger(tb, targets, rate, seconds)
    cpu = (cpu_ticks(pid) - t0) / 100 / seconds * 100
    out: dict[str, Any] = {"rate_pps": rate, "seconds": seconds,
                           "emulator_cpu_pct": round(cpu, 1), "pinger": {}, "fping": {}}
    for t in DELAY_PATHS:
        rtts = [x / 1e6 for x in res[t]["rtt_ns"]]
        out["pinger"][t] = summarise(rtts, res[t]["sent"], configured_rtt(tb, SRC, t))
    loss = res[LOSS_PATH]
    out["loss"] = loss_check(loss["sent"], len(loss["rtt_ns"]), LOSS_RATE)
    status = tb.status()
    out["release_late_us"] = status["release_late_us"]
    keys = ("arrival", "advance_us", "stamp_fallbacks", "tap_drops", "read_wait_us")
    out["arrival"] = {k: status.get(k) for k in keys}
    out["fping"] = fping(tb, seconds, rate)
    out["ping_avg"] = ping_averages(tb)
    return out


def ping_averages(tb: Testbed, count: int = 300) -> dict[str, Any]:
    """iputils ``ping -q`` at 100/s per path, one path at a time: its summary prints min and
    avg to the us, which its per-packet lines (0.1 ms steps above 10 ms) do not."""
    out = {}
    for t in DELAY_PATHS:
        proc = tb.exec(SRC, ["ping", "-4", "-n", "-q", "-c", str(count), "-i", "0.01",
                             tb.hosts[t].v4], timeout=count * 0.05 + 30)
        m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/", proc.stdout)
        if m:
            conf = configured_rtt(tb, SRC, t)
            out[t] = {"configured_rtt_ms": round(conf, 4), "rate_pps": 100, "sent": count,
                      "err_min_us": round((float(m.group(1)) - conf) * 1000, 1),
                      "err_avg_us": round((float(m.group(2)) - conf) * 1000, 1)}
    return out


def fping(tb: Testbed, seconds: float, rate: float) -> dict[str, Any]:
    targets = list(DELAY_PATHS)
    period = max(1, round(len(targets) * 1000 / rate))
    count = int(seconds * 1000 / period)
    proc = tb.exec(SRC, ["fping", "-C", str(count), "-p", str(period), "-i", "1", "-t", "1000",
                         "-q", *(tb.hosts[t].v4 for t in targets)], timeout=seconds * 3 + 60)
    out = {}
    for t in targets:
        m = re.search(rf"^{re.escape(tb.hosts[t].v4)}\s*:\s*(.*)$", proc.stderr, re.M)
        rtts = [float(x) for x in m.group(1).split() if x != "-"] if m else []
        if rtts:
            out[t] = summarise(rtts, count, configured_rtt(tb, SRC, t))
    return out


def capacity(rates: Sequence[float], seconds: float) -> list[dict[str, Any]]:
    rows = []
    prof = BUILTIN["direct"].model_copy(update={"name": "capacity", "inter": FLAT,
                                                "intra": FLAT})
    with Testbed.up(default_inventory(), prof, instance="bench-cap") as tb:
        targets = [h for h in tb.hosts if h != SRC]
        conf = {t: configured_rtt(tb, SRC, t) for t in targets}
        pid = int(tb.state["pid"])
        for rate in rates:
            t0 = cpu_ticks(pid)
            res = run_pinger(tb, targets, rate, seconds)
            cpu = (cpu_ticks(pid) - t0) / 100 / seconds * 100
            errs = [(x / 1e6 - conf[t]) * 1000 for t in targets for x in res[t]["rtt_ns"]]
            sent = sum(res[t]["sent"] for t in targets)
            rows.append({"hosts": len(tb.hosts), "paths": len(targets) * 2, "rate_pps": rate,
                         "sent": sent, "received": len(errs),
                         "err_median_us": round(percentile(errs, 50), 1),
                         "err_p99_us": round(percentile(errs, 99), 1),
                         "emulator_cpu_pct": round(cpu, 1)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def machine() -> dict[str, Any]:
    """When and under which load the figures were taken (the machine may be shared)."""
    import datetime
    import os

    return {"utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "loadavg_1m": os.getloadavg()[0], "cpus": os.cpu_count()}


def platform_noise(seconds: float = 2.0, min_gap_ns: int = 5_000) -> dict[str, Any]:
    """How often, and for how long, this machine takes the CPU from a spinning process.

    A loop reads the monotonic clock back to back; a gap over 5 us is time the process did not
    run (timer ticks, interrupts, the hypervisor). On a VM this is the floor under every
    user-space emulator's error: when it rises, the accuracy figures rise with it."""
    gaps: list[int] = []
    now = last = time.perf_counter_ns()
    end = now + int(seconds * 1e9)
    while now < end:
        now = time.perf_counter_ns()
        if now - last > min_gap_ns:
            gaps.append(now - last)
        last = now
    us = [g / 1000 for g in gaps]
    return {"gaps_per_s": round(len(gaps) / seconds), "gap_median_us":
            round(percentile(us, 50), 1) if us else 0.0,
            "gap_p99_us": round(percentile(us, 99), 1) if us else 0.0,
            "gap_max_us": round(max(us), 1) if us else 0.0,
            "gaps_over_300us_per_s": round(sum(g > 300 for g in us) / seconds, 1),
            "cpu_lost_pct": round(100 * sum(gaps) / (seconds * 1e9), 2)}


def loopback_floor(rate: float, count: int = 3000) -> dict[str, Any]:
    """fping over loopback at the same rate: the kernel path with no emulator and no TUN."""
    if shutil.which("fping") is None:
        return {"skipped": "fping not installed"}
    interval_ms = max(1, round(1000 / rate))
    proc = subprocess.run(["fping", "-C", str(count), "-p", str(interval_ms), "-i", "1",
                           "-t", "1000", "-q", "127.0.0.1"], capture_output=True, text=True,
                          check=False)
    rtts = [float(x) * 1000 for x in proc.stderr.split(":")[-1].split() if x != "-"]
    return {"rate_pps": 1000 / interval_ms, "sent": count, "rtt_median_us":
            round(percentile(rtts, 50), 1), "rtt_p99_us": round(percentile(rtts, 99), 1)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="testbed emulator accuracy and capacity")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--rate", type=float, default=1000.0, help="aggregate packets/s")
    parser.add_argument("--full", action="store_true", help="also run the capacity sweep")
    parser.add_argument("--spin-us", type=float, default=DEFAULT_SPIN_US, help="emulator busy-wait")
    parser.add_argument("--advance-us", type=float, default=None,
                        help="emulator calibration: count delay from this long before arrival")
    parser.add_argument("--read-stamps", action="store_true",
                        help="emulator stamps arrivals on read (the design before kernel stamps)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"machine": {**machine(), "platform_noise": platform_noise(),
                                          "loopback_floor": loopback_floor(args.rate)}}
    with Testbed.up(default_inventory(), bench_profile(), sites=["cs-yungu", "cz-ezone"],
                    instance="bench", spin_us=args.spin_us,
                    advance_us=args.advance_us, kernel_stamps=not args.read_stamps) as tb:
        result["accuracy"] = accuracy(tb, args.seconds, args.rate)
    print(json.dumps({"machine": result["machine"], **result["accuracy"]}, indent=1), flush=True)
    if args.full:
        result["capacity"] = capacity([1000, 2000, 4000, 6000], min(args.seconds, 5.0))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
