"""``fping -C N`` summary output -> results.

One line per target: ``ADDR : v1 v2 ... vN`` with each ``v`` an RTT in ms or ``-`` for a packet
not answered within the timeout (lost, RFC 7680 §2.4; use ``-t`` so slow replies are not
counted lost, testbed-timing.md). fping prints no times: packet i of every target is placed at
``--start`` + i x ``--interval`` (fping's ``-p`` period). Per-reply lines (``ADDR : [i], ...``)
are ignored.
"""

from __future__ import annotations

import re

from analyzer.importers.common import Mapping, Problem, default_probe_id, ip_version, make_result
from ixmeter.record import Method, Result, TypeP

_SUMMARY = re.compile(r"^(\S+)\s+:\s+((?:[\d.]+|-)(?:\s+(?:[\d.]+|-))*)\s*$")


def parse_fping(text: str, name: str, m: Mapping) -> tuple[list[Result], list[Problem]]:
    """Summary lines -> results; a target line with a bad value is a problem."""
    out: list[Result] = []
    problems: list[Problem] = []
    if m.start_ns is None:
        return [], [Problem(name, 1, "fping -C prints no times: give --start (and --interval)")]
    if m.src is None:
        return [], [Problem(name, 1, "give --src SITE/CARRIER for the fping host")]
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or "[" in line:
            continue
        match = _SUMMARY.match(line)
        if match is None:
            if " : " in line:
                problems.append(Problem(name, i, f"unreadable fping -C line: {line[:60]!r}"))
            continue
        addr = match.group(1)
        dst = m.dst_for(addr)
        if dst is None:
            problems.append(Problem(name, i, f"no --map {addr}=SITE/CARRIER"))
            continue
        type_p = TypeP("icmp", ip_version(addr), m.size or 64, m.dscp)
        try:
            rtts = [None if v == "-" else round(float(v) * 1e6) for v in match.group(2).split()]
        except (ValueError, OverflowError) as exc:
            problems.append(Problem(name, i, f"bad RTT value: {exc}"))
            continue
        for seq, rtt in enumerate(rtts):
            out.append(make_result(probe_id=m.probe_id or default_probe_id(m.src), src=m.src,
                                   dst=dst, method=Method.ICMP, type_p=type_p, seq=seq,
                                   sent_at_ns=m.start_ns + seq * m.interval_ns, rtt_ns=rtt,
                                   tmax_ns=m.tmax_ns))
    return out, problems
