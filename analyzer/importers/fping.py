"""fping output (``-c N`` / ``-C N``, with or without ``-D``; ``-e``) -> results, checked against
fping's own summary lines.

Lines, as fping 5 prints them (TARGET is an address, or ``name (addr)`` with ``-A -n``):

- ``[EPOCH] TARGET : [i], 64 bytes, 0.036 ms (0.036 avg, 0% loss)``: packet i answered (the
  ``[EPOCH]`` receive time with ``-D``); ``64 bytes`` is the ICMP message (Type-P size);
- ``[EPOCH] TARGET : [i], timed out (0.043 avg, 33% loss)``: packet i lost (RFC 7680 §2.4;
  give ``--tmax`` fping's ``-t``);
- ``TARGET : duplicate for [i], 64 bytes, 0.030 ms``: a duplicate (RFC 7679 §3.4);
- ``TARGET : 0.036 0.050 - 0.053`` (``-C``): every packet's RTT, ``-`` for lost; where the
  per-packet lines are present too, the two must agree;
- ``TARGET : xmt/rcv/%loss = 4/3/25%, min/avg/max = 0.026/0.048/0.060`` (``-c``): checked;
- ``TARGET is alive (0.018 ms)`` (``-e``): one answered packet. ``TARGET is unreachable`` is
  refused: fping's default mode retries (``-r``) and prints no count, so it is not one packet.

A target printed by name alone is refused: its address (and IP version) is unknown; fping
``-A`` prints it. Send times: with ``-D``, an answered packet's receive time minus its RTT;
other packets between their neighbours' (:func:`analyzer.importers.common.place_sends`);
without ``-D``, ``--start`` + i x ``--interval`` (fping's ``-p`` period).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from analyzer.importers.common import (
    Check,
    Delays,
    Mapping,
    Parsed,
    Problem,
    default_probe_id,
    delays_disagree,
    ip_version,
    make_result,
    ms_to_ns,
    over_tmax,
    parse_stamp,
    place_sends,
    split_stamp,
)
from ixmeter.core.errors import RecordError
from ixmeter.core.record import Method, TypeP

_TARGET = r"(\S+(?: \([^()\s]+\))?)"
_REPLY = re.compile(_TARGET + r"\s+: \[(\d+)\], (\d+) bytes, (\d+(?:\.\d+)?) ms "
                     r"\((?:[\d.]+|NaN) avg, \d+% loss\)$")
_TIMEOUT = re.compile(_TARGET + r"\s+: \[(\d+)\], timed out \((?:[\d.]+|NaN) avg, \d+% loss\)$")
_DUP = re.compile(_TARGET + r"\s+: duplicate for \[(\d+)\], (\d+) bytes, (\d+(?:\.\d+)?) ms$")
_VALUES = re.compile(_TARGET + r"\s+:((?: +(?:\d+(?:\.\d+)?|-))+)$")
_COUNTS = re.compile(_TARGET + r"\s+: xmt/rcv/%loss = (\d+)/(\d+)/\d+%"
                     r"(?:, min/avg/max = ([\d.]+)/([\d.]+)/([\d.]+))?(?:, outage\(ms\) = \d+)?$")
_ALIVE = re.compile(_TARGET + r" is alive(?: \((\d+(?:\.\d+)?) ms\))?$")
_UNREACHABLE = re.compile(_TARGET + r" is unreachable$")
MAX_PACKETS = 10_000_000


@dataclass
class _Packet:
    line: int
    rtt: int | None  # None: timed out
    half: int = 0
    stamp: int | None = None
    dups: int = 0


@dataclass
class _Target:
    addr: str
    line: int
    size: int | None = None
    packets: dict[int, _Packet] = field(default_factory=dict)
    refused: set[int] = field(default_factory=set)
    values: tuple[int, list[tuple[int, int] | None]] | None = None  # -C line, values
    counts: tuple[int, int, int, tuple[float, float, float] | None] | None = None


def parse_fping(text: str, name: str, m: Mapping) -> Parsed:
    """fping's lines -> one result per packet of each target."""
    out = Parsed()
    if m.src is None:
        out.problems.append(Problem(name, 1, "give --src SITE/CARRIER for the fping host"))
        return out
    targets: dict[str, _Target] = {}
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        stamp, body = split_stamp(line)
        why = _line(targets, i, stamp, body, m)
        if why:
            out.problems.append(Problem(name, i, f"{why}: {body[:80]!r}"))
    for t in targets.values():
        out.extend(_results(t, name, m))
    return out


def _address(target: str) -> str | None:
    """The address of ``addr`` or ``name (addr)``; None for a bare name."""
    addr = target.rsplit("(", 1)[1].rstrip(")") if "(" in target else target
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        return None
    return addr


def _target(targets: dict[str, _Target], who: str, i: int) -> _Target | str:
    addr = _address(who)
    if addr is None:
        return f"{who!r} is a host name without its address (run fping with -A)"
    return targets.setdefault(addr, _Target(addr, i))


def _line(targets: dict[str, _Target], i: int, stamp: str | None, body: str,
          m: Mapping) -> str | None:
    """Take one line; the reason if it is refused."""
    for pattern, take in ((_REPLY, _reply), (_TIMEOUT, _timeout), (_DUP, _dup),
                          (_COUNTS, _counts), (_VALUES, _values), (_ALIVE, _alive)):
        match = pattern.match(body)
        if match:
            t = _target(targets, match.group(1), i)
            if isinstance(t, str):
                return t
            try:
                return take(t, i, stamp, match, m)
            except (ValueError, OverflowError) as exc:
                return str(exc)
    if _UNREACHABLE.match(body):
        return ("fping's default mode retries (-r) and prints no packet count: not one "
                "packet; use fping -c or -C for loss")
    return "not a line of fping output"


def _index(t: _Target, text: str) -> int:
    i = int(text)
    if i >= MAX_PACKETS:
        raise ValueError(f"packet [{i}] beyond {MAX_PACKETS}")
    return i


def _reply(t: _Target, i: int, stamp: str | None, r: re.Match[str], m: Mapping) -> str | None:
    k = _index(t, r.group(2))
    rtt, half = ms_to_ns(r.group(4))
    if tmax := over_tmax(rtt, m):
        t.refused.add(k)
        return tmax
    if k in t.packets:
        t.refused.add(k)
        return f"a second line for packet [{k}]"
    if t.size is not None and t.size != int(r.group(3)):
        t.refused.add(k)
        return f"{r.group(3)} bytes where earlier replies had {t.size}"
    t.size = int(r.group(3))
    ns = parse_stamp(stamp) - rtt if stamp else None
    t.packets[k] = _Packet(i, rtt, half, ns)
    return None


def _timeout(t: _Target, i: int, stamp: str | None, r: re.Match[str], m: Mapping) -> str | None:
    k = _index(t, r.group(2))
    if k in t.packets:
        t.refused.add(k)
        return f"a second line for packet [{k}]"
    t.packets[k] = _Packet(i, None)
    return None


def _dup(t: _Target, i: int, stamp: str | None, r: re.Match[str], m: Mapping) -> str | None:
    k = _index(t, r.group(2))
    p = t.packets.get(k)
    if p is None or p.rtt is None:
        return f"a duplicate for packet [{k}], whose first reply is not imported"
    p.dups += 1
    return None


def _values(t: _Target, i: int, stamp: str | None, r: re.Match[str], m: Mapping) -> str | None:
    if t.values is not None:
        return "a second -C line for this target (one fping run per file)"
    values = [None if v == "-" else ms_to_ns(v) for v in r.group(2).split()]
    if len(values) > MAX_PACKETS:
        raise ValueError(f"more than {MAX_PACKETS} packets")
    for k, v in enumerate(values):
        if v is not None and (tmax := over_tmax(v[0], m)):
            return f"packet [{k}]: {tmax}"
    t.values = (i, values)
    return None


def _counts(t: _Target, i: int, stamp: str | None, r: re.Match[str], m: Mapping) -> str | None:
    trio = None if r.group(4) is None else (float(r.group(4)), float(r.group(5)),
                                            float(r.group(6)))
    t.counts = (i, int(r.group(2)), int(r.group(3)), trio)
    return None


def _alive(t: _Target, i: int, stamp: str | None, r: re.Match[str], m: Mapping) -> str | None:
    if r.group(2) is None:
        return "'is alive' without its RTT: run fping with -e"
    if t.packets:
        return "a second 'is alive' line for this target (one fping run per file)"
    rtt, half = ms_to_ns(r.group(2))
    if tmax := over_tmax(rtt, m):
        return tmax
    t.packets[0] = _Packet(i, rtt, half, parse_stamp(stamp) - rtt if stamp else None)
    return None


def _packets(t: _Target, name: str) -> tuple[dict[int, _Packet], str]:
    """Every packet of the target, from the per-packet lines or the -C line; and why the two
    disagree (empty if they agree or only one is there)."""
    if t.values is None:
        return t.packets, ""
    line, values = t.values
    merged: dict[int, _Packet] = {}
    bad = []
    for k, v in enumerate(values):
        p = t.packets.get(k)
        if p is not None and (p.rtt is None) != (v is None) or (
                p is not None and v is not None and p.rtt != v[0]):
            bad.append(k)
        rtt, half = (None, 0) if v is None else v
        merged[k] = _Packet(line, rtt, half, p.stamp if p else None, p.dups if p else 0)
    extra = [k for k in t.packets if k >= len(values)]
    why = ""
    if bad or extra:
        why = f"packets {sorted(bad + extra)[:10]} differ between the per-packet lines and the " \
              "-C line: neither is imported for them"
        for k in bad + extra:
            merged.pop(k, None)
            t.refused.add(k)
    return merged, why


def _results(t: _Target, name: str, m: Mapping) -> Parsed:
    out = Parsed()
    dst = m.dst_for(t.addr)
    assert m.src is not None
    if dst is None:
        out.problems.append(Problem(name, t.line, f"no --map {t.addr}=SITE/CARRIER"))
        return out
    size = t.size or m.size or 64  # fping's default -b 56 data bytes: 64-octet ICMP message
    if m.size is not None and t.size is not None and t.size != m.size:
        out.problems.append(Problem(name, t.line, f"fping says {t.size} bytes, --size says "
                                    f"{m.size}"))
        return out
    packets, why = _packets(t, name)
    if why:
        out.problems.append(Problem(name, t.values[0] if t.values else t.line, why))
    last = max([*packets, *t.refused, -1])
    if t.counts is not None:
        last = max(last, t.counts[1] - 1)
    stamped = {k: p.stamp for k, p in packets.items() if p.stamp is not None}
    times, no_time = place_sends(stamped, 0, last, m)
    if no_time:
        out.problems.append(Problem(name, t.line, no_time))
        return out
    probe = m.probe_id or default_probe_id(m.src)
    type_p = TypeP("icmp", ip_version(t.addr), size, m.dscp)
    missing = [k for k in range(last + 1) if k not in packets and k not in t.refused]
    if missing and t.counts is None:
        out.problems.append(Problem(name, t.line, f"packets {missing[:10]} have no line and no "
                                    "summary says whether they were sent"))
    for k in sorted(packets):
        p = packets[k]
        try:
            out.add(p.line, make_result(probe_id=probe, src=m.src, dst=dst, method=Method.ICMP,
                                        type_p=type_p, seq=k, sent_at_ns=times[k], rtt_ns=p.rtt,
                                        tmax_ns=m.tmax_ns, dup=p.dups))
        except (RecordError, ValueError) as exc:
            out.problems.append(Problem(name, p.line, str(exc)))
    if t.counts is not None:
        out.checks.append(_check(t, packets, name))
    return out


def _check(t: _Target, packets: dict[int, _Packet], name: str) -> Check:
    """fping's ``xmt/rcv`` and min/avg/max against what was imported."""
    assert t.counts is not None
    line, xmt, rcv, trio = t.counts
    got = [p for p in packets.values() if p.rtt is not None]
    delays = Delays.of([(p.rtt, p.half) for p in got if p.rtt is not None])
    mine = f"{len(packets)} sent, {len(got)} received" + (f", {delays.text()}" if delays else "")
    tool = f"{xmt} sent, {rcv} received" + (
        f", min/avg/max {trio[0]:.3f}/{trio[1]:.3f}/{trio[2]:.3f} ms" if trio else "")
    why = ""
    if t.refused:
        why = f"{len(t.refused)} packets refused (listed above) are not imported"
    elif (len(packets), len(got)) != (xmt, rcv):
        why = "the lines printed do not add up to fping's summary"
    elif trio is not None:
        why = delays_disagree(delays, *trio, 0.0005)
    return Check(name, line, f"fping {t.addr}", tool, mine, why)
