"""One probe at the Hunan plan's full load on the testbed: CPU, memory, traces/s, drops (root).

``python -m bench.probe_fleet [--seconds 180] [--trace-scale 1] [--sites a,b] [--json]``

Brings up the emulated network (instance ``fleet``, profile ``direct``) with every site of
``inventory/hunan.yaml`` (or ``--sites``), one STAMP reflector socket in every other host (one
process serving them all, each socket made in its host's namespace), a collector inside the
probe's host, and runs ``ixmeter probe run`` as ``cs-yungu-ct`` with its configuration from the
inventory: per destination probe and IP version one ICMP job (1/s), one STAMP job (1/s) and
one Paris trace job (0.0034/s, one trace about every 3.9 s over the 76 paths). ``--trace-scale``
multiplies the trace rate to find where traces stop keeping up. Reports the probe process's
CPU (utime + stime from ``/proc``, after a 10 s warm-up) and peak RSS, results by method and
status, traces per second, local drops by cause and the load average; figures in
docs/probe.md.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROBE = "cs-yungu-ct"
WARMUP_S = 10.0
_CLONE_NEWNET = 0x40000000


def reflector_sockets(namespaces: list[str], port: int) -> list[socket.socket]:
    """A STAMP reflector socket (v4 and v6) in each namespace, made there by ``setns``."""
    from probes.stamp.net import open_udp

    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    out = []
    try:
        for ns in namespaces:
            fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
            try:
                assert libc.setns(fd, _CLONE_NEWNET) == 0
                out += [open_udp("0.0.0.0", port)[0], open_udp("::", port)[0]]
            finally:
                os.close(fd)
    finally:
        assert libc.setns(home, _CLONE_NEWNET) == 0
        os.close(home)
    return out


def serve_reflectors(namespaces: list[str], port: int) -> None:
    """Serve STAMP on every namespace's sockets until SIGTERM (one process for them all)."""
    import trio

    from probes.stamp.net import serve_reflector
    from probes.stamp.session import ReflectorConfig, SessionReflector

    socks = reflector_sockets(namespaces, port)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for sock in socks:
                await nursery.start(serve_reflector, sock,
                                    SessionReflector(ReflectorConfig(rate_pps=1000, burst=100)))
            print("reflectors ready", flush=True)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    break
            nursery.cancel_scope.cancel()

    trio.run(main)


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int, key: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _inventory(tmp: Path, scale: float) -> Path:
    from inventory.loader import default_inventory

    text = default_inventory().read_text(encoding="utf-8")
    path = tmp / "hunan.yaml"
    path.write_text(text.replace("rate_pps: 0.0034,", f"rate_pps: {0.0034 * scale:g},"),
                    encoding="utf-8")
    return path


def _collector(tb: Any, tmp: Path, inv: Path) -> subprocess.Popen[Any]:
    ixm = [sys.executable, "-m", "ixmeter.cli"]
    subprocess.run([*ixm, "keys", "new", "--probe", PROBE, "--out", str(tmp / "keys.yaml")],
                   check=True, capture_output=True, cwd=ROOT)
    argv = [*ixm, "collector", "serve", "--db", str(tmp / "collector.db"), "--keys",
            str(tmp / "keys.yaml"), "--bind", "127.0.0.1:8443", "--inventory", str(inv)]
    proc: subprocess.Popen[Any] = tb.popen(PROBE, argv, cwd=ROOT, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
    return proc


def _probe_config(tmp: Path, inv: Path) -> Path:
    import yaml

    from probes.config import probe_config_for

    key = yaml.safe_load((tmp / "keys.yaml").read_text())[PROBE]
    (tmp / "probe.key").write_text(key if isinstance(key, str) else key[0])
    data = probe_config_for(inv, PROBE, collector_url="http://127.0.0.1:8443",
                            key_file=str(tmp / "probe.key"), spool=str(tmp / "spool.db"),
                            metrics_port=0)
    path = tmp / "probe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _sample(pid: int, seconds: float) -> dict[str, float]:
    """CPU between the warm-up and the end, peak RSS."""
    warm = min(WARMUP_S, seconds / 4)
    time.sleep(warm)
    cpu0, t0 = _proc_cpu_s(pid), time.monotonic()
    time.sleep(max(0.0, seconds - warm - 1.0))
    cpu1, t1 = _proc_cpu_s(pid), time.monotonic()
    return {"cpu_share": (cpu1 - cpu0) / (t1 - t0), "measured_s": t1 - t0,
            "rss_peak_mib": _rss_mib(pid), "rss_mib": _rss_mib(pid, "VmRSS")}


def _results(tmp: Path, seconds: float) -> dict[str, Any]:
    """What the collector stored and the spool still holds, by method and status."""
    counts: Counter[str] = Counter()
    drops: Counter[str] = Counter()
    from analyzer.store import Query, open_store
    from ixmeter.core.record import from_dict

    store = open_store(tmp / "collector.db")
    results = list(store.read_results(Query(0, 2**62)))
    store.close()
    with contextlib.closing(sqlite3.connect(tmp / "spool.db")) as db:
        results += [from_dict(json.loads(b)) for (b,) in db.execute("SELECT body FROM results")]
    for r in results:
        counts[f"{r.method}/{r.status}"] += 1
        if r.error is not None:
            drops[f"{r.method}/{r.error}:{r.error_detail}"] += 1
    traces = [r for r in results if r.method == "traceroute" and r.error is None]
    return {"by_method_status": dict(counts), "errors": dict(drops),
            "traces": len(traces), "traces_per_s": len(traces) / seconds,
            "traces_reached": sum(r.status == "received" for r in traces)}


def run(seconds: float, scale: float, sites: list[str], instance: str) -> dict[str, Any]:
    from inventory.loader import default_inventory
    from testbed.api import Testbed

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ixm-fleet-") as d, \
            Testbed.up(default_inventory(), "direct", sites=sites, instance=instance) as tb:
        tmp = Path(d)
        inv = _inventory(tmp, scale)
        others = [h.namespace for name, h in tb.hosts.items() if name != PROBE]
        refl = subprocess.Popen([sys.executable, "-m", "bench.probe_fleet", "--reflectors",
                                 ",".join(others)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        collector = _collector(tb, tmp, inv)
        try:
            assert refl.stdout is not None
            if "ready" not in refl.stdout.readline():
                raise RuntimeError("the reflectors did not start")
            time.sleep(2.0)  # the collector binds
            config = _probe_config(tmp, inv)
            probe = tb.popen(PROBE, [sys.executable, "-m", "ixmeter.cli", "probe", "run",
                                     "--config", str(config), "--duration", str(seconds)],
                             cwd=ROOT, stderr=subprocess.PIPE, text=True)
            sample = _sample(probe.pid, seconds)
            _out, err = probe.communicate(timeout=seconds + 120)
        finally:
            for proc in (refl, collector):
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
            if refl.stdout is not None:
                refl.stdout.close()
        out = {"seconds": seconds, "trace_scale": scale, "hosts": len(tb.hosts),
               "load_before": load_before, "load_after": os.getloadavg(), **sample,
               **_results(tmp, seconds), "probe_stderr": err.strip().splitlines()[-3:]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--trace-scale", type=float, default=1.0)
    parser.add_argument("--sites", default="", help="comma-separated sites (default: all)")
    parser.add_argument("--instance", default="fleet")
    parser.add_argument("--reflectors", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.reflectors:
        serve_reflectors(args.reflectors.split(","), 862)
        return 0
    sites = [s for s in args.sites.split(",") if s]
    out = run(args.seconds, args.trace_scale, sites, args.instance)
    print(json.dumps(out, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
