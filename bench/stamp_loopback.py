"""STAMP on loopback: throughput per core and RTT_net accuracy against kernel timestamps.

Run ``.venv/bin/python bench/stamp_loopback.py`` (about 15 s) or add ``--full`` (about 1 min).

1. **Throughput.** ``ixmeter reflector`` runs as a child process; this process keeps
   ``--window`` packets in flight for ``--seconds`` through the probe's own session-sender.
   Reported: packets/s and CPU seconds per 1,000 packets for each side, hence packets/s one
   core sustains (1,000 / CPU-seconds-per-1,000).
2. **Accuracy.** An in-process reflector that also takes kernel TX stamps of its replies gives a
   reference RTT_net = (T4k - T1k) - (T3k - T2k) with all four times kernel software stamps
   (Documentation/networking/timestamping.rst). ixmeter's RTT_net uses a user-space T3 (it must
   be written into the reply before it is sent, RFC 8762 §4.3.1); the difference is reported,
   as is the user-space RTT (monotonic clock around the send and receive) minus the kernel RTT.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import socket
import statistics
import subprocess
import sys
import time

import trio

from ixmeter.core import timestamping as ts
from probes.clock import ClockStatus, SystemClock
from probes.stamp.codec import decode_reflector
from probes.stamp.net import SenderEndpoint, open_udp
from probes.stamp.session import ReflectorConfig, Reply, SessionReflector, SessionSender


def _status() -> ClockStatus:
    return ClockStatus(True, 1_000, 1_000, "bench")


def _sender(port: int, tmax_ns: int = 1_000_000_000) -> SenderEndpoint:
    sock, info = open_udp("127.0.0.1", 0, tx_stamps=True)
    sock.connect(("127.0.0.1", port))
    return SenderEndpoint(sock, info, SessionSender(ssid=1, tmax_ns=tmax_ns), SystemClock(),
                          _status)


# --- 1. throughput --------------------------------------------------------------------------


async def throughput(seconds: float, window: int) -> dict[str, float]:
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "ixmeter.cli", "reflector", "--bind", "127.0.0.1", "--port", "0",
         "--rate-limit", "1e9", "--burst", "1000000", "--duration", str(seconds + 3)],
        stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = b""
    while b"\n" not in line:
        line += await proc.stdout.receive_some()
    port = int(line.decode().split("]:")[1].split()[0])
    endpoint = _sender(port)
    done = {"ok": 0, "lost": 0}
    cpu0, t0 = time.process_time(), time.perf_counter()

    async def worker() -> None:
        while time.perf_counter() - t0 < seconds:
            out = await endpoint.probe()
            done["ok" if isinstance(out, Reply) else "lost"] += 1

    async with trio.open_nursery() as nursery:
        await nursery.start(endpoint.run)
        async with trio.open_nursery() as workers:
            for _ in range(window):
                workers.start_soon(worker)
        nursery.cancel_scope.cancel()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    endpoint.sock.close()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    while await proc.stdout.receive_some():
        pass
    await proc.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    n = done["ok"] + done["lost"]
    return {"packets": n, "lost": done["lost"], "pps": n / elapsed,
            "sender_cpu_us_per_packet": 1e6 * cpu / n,
            "reflector_cpu_us_per_packet": 1e6 * child_cpu / n}


# --- 2. accuracy --------------------------------------------------------------------------


async def _kernel_reflector(sock: socket.socket, refs: dict[int, tuple[int, int, int]],
                            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                            ) -> None:
    """A reflector loop that also records (T2 kernel, T3 kernel TX, T3 user) per sender seq."""
    reflector = SessionReflector(ReflectorConfig(rate_pps=1e9, burst=10**9))
    clock, sent = SystemClock(), 0
    task_status.started()
    while True:
        try:
            data, anc, _f, addr = sock.recvmsg(2048, ts.ANCBUFSIZE)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)
            continue
        rx = ts.rx_timestamp_ns(anc) or clock.wall_ns()
        prepared = reflector.prepare(data, addr, rx, ts.ttl_from_ancdata(anc), clock.mono_ns())
        if prepared is None:
            continue
        wall = clock.wall_ns()
        reply = prepared.encode(wall)
        sock.sendto(reply, addr)
        got = ts.read_tx_timestamp(sock)
        if got is not None and got[0] == sent:
            refs[decode_reflector(reply).sender_seq] = (rx, got[1], wall)
        sent += 1


async def accuracy(count: int, rate: float) -> dict[str, float]:
    rsock, _info = open_udp("127.0.0.1", 0, tx_stamps=True)
    refs: dict[int, tuple[int, int, int]] = {}
    endpoint = _sender(rsock.getsockname()[1])
    net_err: list[int] = []
    user_minus_kernel: list[int] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(_kernel_reflector, rsock, refs)
        await nursery.start(endpoint.run)
        start = trio.current_time()
        for i in range(count):
            await trio.sleep_until(start + i / rate)
            m0 = time.monotonic_ns()
            out = await endpoint.probe()
            m1 = time.monotonic_ns()
            if not isinstance(out, Reply) or not out.t1_kernel or out.seq not in refs:
                continue
            t2k, t3k, _t3u = refs[out.seq]
            ref = (out.t4_ns - out.t1_ns) - (t3k - t2k)
            net_err.append(out.rtt_net_ns - ref)
            user_minus_kernel.append((m1 - m0) - (out.t4_ns - out.t1_ns))
        nursery.cancel_scope.cancel()
    rsock.close()
    endpoint.sock.close()
    return {"n": len(net_err), **_pct("rtt_net_minus_kernel_ref", net_err),
            **_pct("user_rtt_minus_kernel_rtt", user_minus_kernel)}


def _pct(name: str, xs: list[int]) -> dict[str, float]:
    xs = sorted(xs)
    if not xs:
        return {}

    def q(p: float) -> float:  # inverted_cdf (RFC 2330 §11.3)
        return xs[max(0, math.ceil(len(xs) * p / 100) - 1)] / 1000

    return {f"{name}_p50_us": q(50), f"{name}_p99_us": q(99), f"{name}_max_us": xs[-1] / 1000,
            f"{name}_mean_us": statistics.fmean(xs) / 1000}


async def main(args: argparse.Namespace) -> None:
    print(f"# machine: {os.cpu_count()} vCPU, shared; python {sys.version.split()[0]}")
    acc = await accuracy(args.count, args.rate)
    print(f"accuracy ({acc['n']} packets at {args.rate:.0f}/s):")
    for key, value in acc.items():
        if key != "n":
            print(f"  {key:40s} {value:10.1f}")
    thr = await throughput(args.seconds, args.window)
    print(f"throughput ({args.seconds:.0f} s, window {args.window}):")
    for key, value in thr.items():
        print(f"  {key:40s} {value:10.1f}")
    for side in ("sender", "reflector"):
        per_core = 1e6 / max(thr[f"{side}_cpu_us_per_packet"], 1e-9)
        print(f"  {side + ' packets/s per core':40s} {per_core:10.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="longer run (about 1 minute)")
    parser.add_argument("--window", type=int, default=32, help="packets in flight (throughput)")
    parser.add_argument("--rate", type=float, default=500.0, help="packets/s (accuracy)")
    ns = parser.parse_args()
    ns.count = 20_000 if ns.full else 3_000
    ns.seconds = 20.0 if ns.full else 5.0
    trio.run(main, ns)
