"""A kernel-timestamped ICMP echo pinger for the testbed benchmarks (runs inside a host).

``python -m bench.testbed_pinger --targets A,B --rate 1000 --seconds 5`` sends echo requests
round-robin to the targets at ``rate`` packets/s in aggregate, on an absolute schedule (RFC 2330
§11.1.3: no drift from send time), and prints one JSON object: per target, packets sent and the
RTT in ns of each reply. Send time: ``time.time_ns()`` just before ``sendto``; receive time: the
kernel's ``SO_TIMESTAMPNS`` stamp (both CLOCK_REALTIME). Needs a raw socket (root).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import time

from ixmeter.core.timestamping import enable_rx_timestamps, rx_timestamp_ns
from testbed.packets import checksum
from testbed.timerfd import TimerFd


def _echo(ident: int, seq: int) -> bytes:
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"ixmeter-bench-pad" * 2
    return body[:2] + checksum(body).to_bytes(2, "big") + body[4:]


def _receive(sock: socket.socket, ident: int, sent: dict[int, tuple[int, int]],
             rtts: dict[int, list[int]]) -> None:
    while True:
        try:
            data, anc, _flags, _addr = sock.recvmsg(2048, 64, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        ihl = (data[0] & 0x0F) * 4
        if len(data) < ihl + 8 or data[ihl] != 0:
            continue
        rid, seq = struct.unpack_from("!HH", data, ihl + 4)
        if rid != ident or seq not in sent:
            continue
        rx = rx_timestamp_ns(anc) or time.time_ns()
        target, tx = sent.pop(seq)
        rtts[target].append(rx - tx)


def ping(targets: list[str], rate: float, seconds: float, linger: float = 1.0) -> dict[str, object]:
    """Send round-robin at ``rate``/s for ``seconds``; collect replies for ``linger`` more."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    enable_rx_timestamps(sock)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    ident = os.getpid() & 0xFFFF
    timer = TimerFd()
    gap = int(1e9 / rate)
    n = int(rate * seconds)
    sent: dict[int, tuple[int, int]] = {}
    rtts: dict[int, list[int]] = {i: [] for i in range(len(targets))}
    counts = [0] * len(targets)
    start = time.monotonic_ns() + 10_000_000
    for k in range(n):
        timer.arm(start + k * gap)
        while True:
            ready = select.select([sock.fileno(), timer.fd], [], [])[0]
            if sock.fileno() in ready:
                _receive(sock, ident, sent, rtts)
            if timer.fd in ready:
                timer.clear()
                break
        t = k % len(targets)
        seq = k & 0xFFFF
        packet = _echo(ident, seq)  # built before the send stamp
        sent[seq] = (t, time.time_ns())
        sock.sendto(packet, (targets[t], 0))
        counts[t] += 1
    end = time.monotonic() + linger
    while time.monotonic() < end:
        if select.select([sock], [], [], 0.05)[0]:
            _receive(sock, ident, sent, rtts)
    return {"targets": {targets[i]: {"sent": counts[i], "rtt_ns": rtts[i]}
                        for i in range(len(targets))}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--targets", required=True, help="comma-separated IPv4 addresses")
    parser.add_argument("--rate", type=float, default=1000.0, help="aggregate packets/s")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    json.dump(ping(args.targets.split(","), args.rate, args.seconds), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
