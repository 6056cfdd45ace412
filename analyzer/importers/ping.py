"""iputils ``ping`` output (commit 9900265 formats) -> results.

Replies: ``[EPOCH] 64 bytes from ADDR: icmp_seq=N ttl=T time=X ms`` (``[EPOCH]`` with ``-D``,
the receive time). Sequence numbers missing below the transmitted count are lost (RFC 7680
§2.4); ``(DUP!)`` lines count as duplicates of an already received packet (RFC 7679 §3.4: the
first copy counts). Send time: the ``-D`` receive time minus the RTT, or, without ``-D``,
``--start`` + (seq - 1) x ``--interval``. The ICMP message size is the data size + 8 (the
``56(84) bytes`` header line).
"""

from __future__ import annotations

import re

from analyzer.importers.common import (
    MAX_NS,
    Mapping,
    Problem,
    default_probe_id,
    ip_version,
    make_result,
)
from ixmeter.record import Method, Result, TypeP

_HEADER = re.compile(r"^PING (\S+?) ?\(([^)]+)\) (\d+)")
_REPLY = re.compile(r"^(?:\[(\d+(?:\.\d+)?)\] )?\d+ bytes from (.+?):? "
                    r"icmp_seq=(\d+)(?: ttl=(\d+))? time=([\d.]+) ms(.*)$")
MAX_PACKETS = 10_000_000  # one run's output; more is not a ping run but a typo or an attack
_TOTAL = re.compile(r"^(\d+) packets transmitted, (\d+) received")


def parse_ping(text: str, name: str, m: Mapping) -> tuple[list[Result], list[Problem]]:
    """One ping run's output -> one result per sequence number."""
    problems: list[Problem] = []
    addr, size, transmitted = "", m.size or 64, 0
    replies: dict[int, tuple[int, int, int | None]] = {}  # seq -> (rtt ns, sent_at, ttl)
    dups: dict[int, int] = {}
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if h := _HEADER.match(line):
            addr, size = h.group(2), m.size or int(h.group(3)) + 8
        elif r := _REPLY.match(line):
            try:
                seq, rtt = int(r.group(3)), round(float(r.group(5)) * 1e6)
            except (ValueError, OverflowError):
                problems.append(Problem(name, i, f"bad time {r.group(5)!r}"))
                continue
            if seq > MAX_PACKETS:
                problems.append(Problem(name, i, f"icmp_seq={seq} beyond {MAX_PACKETS}"))
                continue
            if "DUP!" in r.group(6):
                dups[seq] = dups.get(seq, 0) + 1
                continue
            sent = _sent_at(r.group(1), seq, rtt, m)
            if sent is not None and not 0 <= sent <= MAX_NS:
                problems.append(Problem(name, i, f"send time {sent} ns outside 1970..2262"))
                continue
            if sent is None:
                problems.append(Problem(name, i, "no [timestamp] (ping -D) and no --start"))
                continue
            ttl = int(r.group(4)) if r.group(4) else None
            replies[seq] = (rtt, sent, ttl)
        elif t := _TOTAL.match(line):
            transmitted = int(t.group(1))
            if transmitted > MAX_PACKETS:
                problems.append(Problem(name, i, f"{transmitted} packets: more than "
                                        f"{MAX_PACKETS} in one run"))
                transmitted = 0
    if not addr:
        return [], [Problem(name, 1, "not iputils ping output: no 'PING host (addr)' line")]
    return _results(addr, size, replies, dups, transmitted, m, name, problems)


def _sent_at(stamp: str | None, seq: int, rtt_ns: int, m: Mapping) -> int | None:
    if stamp:
        whole, _, frac = stamp.partition(".")
        return int(whole) * 1_000_000_000 + int(frac.ljust(9, "0")[:9]) - rtt_ns
    if m.start_ns is None:
        return None
    return m.start_ns + (seq - 1) * m.interval_ns


def _results(addr: str, size: int, replies: dict[int, tuple[int, int, int | None]],
             dups: dict[int, int], transmitted: int, m: Mapping, name: str,
             problems: list[Problem]) -> tuple[list[Result], list[Problem]]:
    dst = m.dst_for(addr)
    if m.src is None or dst is None:
        problems.append(Problem(name, 1, f"no site/carrier for {addr}: give --src and --dst "
                                "(or --map ADDR=SITE/CARRIER)"))
        return [], problems
    type_p = TypeP("icmp", ip_version(addr), size, m.dscp)
    probe = m.probe_id or default_probe_id(m.src)
    last = max([transmitted, *replies])
    anchor = _anchor(replies, m)
    out = []
    for seq in range(1, last + 1):
        rtt, sent, ttl = replies.get(seq, (None, None, None))
        if sent is None:
            if anchor is None:
                problems.append(Problem(name, 1, f"icmp_seq={seq} lost but its send time is "
                                        "unknown: give --start and --interval"))
                continue
            sent = anchor[1] + (seq - anchor[0]) * m.interval_ns
        out.append(make_result(probe_id=probe, src=m.src, dst=dst, method=Method.ICMP,
                               type_p=type_p, seq=seq, sent_at_ns=sent, rtt_ns=rtt,
                               tmax_ns=m.tmax_ns, dup=dups.get(seq, 0) if rtt else 0,
                               reply_ttl=ttl))
    return out, problems


def _anchor(replies: dict[int, tuple[int, int, int | None]], m: Mapping) -> tuple[int, int] | None:
    """A (seq, send time) to place lost packets at: the first reply, or ``--start``."""
    if m.start_ns is not None:
        return (1, m.start_ns)
    if replies:
        seq = min(replies)
        return (seq, replies[seq][1])
    return None
