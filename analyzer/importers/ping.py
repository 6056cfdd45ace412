"""iputils ``ping`` output -> results, one per ICMP sequence number, checked against ping's own
statistics lines.

Lines (each may start with ``[EPOCH]``, the receive or print time, with ``ping -D``):

- ``PING host (addr) 56(84) bytes of data.`` (IPv4), ``PING addr(addr) 56 data bytes`` and
  ``PING name(name (addr)) 56 data bytes`` (IPv6), optionally ``from SRC IFACE:``; the ICMP
  message size of the Type-P (RFC 2330 §13) is the data size + 8;
- ``64 bytes from WHO: icmp_seq=N ttl=T time=X ms`` (WHO an address or ``name (addr)``): a
  reply; with ``(DUP!)`` a duplicate of an already received packet (RFC 7679 §3.4: the first
  copy counts);
- ``From WHO icmp_seq=N TEXT`` (e.g. Destination Host Unreachable): an error record, not a
  sample (ping counts it in ``+E errors`` and as not received);
- ``no answer yet for icmp_seq=N`` (``-O``), the ``--- ... ping statistics ---`` block.

A sequence number below the transmitted count with no line is lost (RFC 7680 §2.4). Any other
line is refused with its reason, and a refused reply's sequence number is never stored as lost.
Sequence numbers are 16-bit on the wire and wrap after 65535; they are unwrapped in text order.

Send times: with ``-D``, a reply's receive stamp minus its RTT; a packet without a reply is
placed between its neighbours' real send times, linearly by sequence number (so it is never
stored before the packet that preceded it: ping's cadence drifts from ``-i``); before the first
or after the last reply it is placed ``--interval`` apart. Without ``-D``, every packet is at
``--start`` + (seq - 1) x ``--interval``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

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

_HEADER = re.compile(r"^PING (\S+?) ?\(([^()]+(?: \([^()]+\))?)\)(?: from (\S+) \S+:)? "
                     r"(\d+)(?:\(\d+\))? (?:bytes of data\.|data bytes)$")
_REPLY = re.compile(r"^(\d+) bytes from (.+?): icmp_seq=(\d+)(?: ttl=(\d+))? "
                    r"time=(\d+(?:\.\d+)?) ms(.*)$")
_ERROR = re.compile(r"^From (.+?) icmp_seq=(\d+) (.+)$")
_NO_ANSWER = re.compile(r"^no answer yet for icmp_seq=(\d+)$")
_SEQ = re.compile(r"icmp_seq=(\d+)")
_STATS = re.compile(r"^--- (.+) ping statistics ---$")
_TOTAL = re.compile(r"^(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?"
                    r"(?:, \+(\d+) corrupted)?(?:, \+(\d+) errors)?(?:, [\d.]+% packet loss)?"
                    r"(?:, time \d+ms)?$")
_RTT = re.compile(r"^rtt min/avg/max/mdev = ([\d.]+)/([\d.]+)/([\d.]+)/[\d.]+ ms(?:, .*)?$")
_PIPE = re.compile(r"^pipe \d+$")
MAX_PACKETS = 10_000_000  # one run's output; more is not a ping run but a typo or an attack
WRAP = 65_536  # icmp_seq is 16 bits
_NOT_16_BITS = f"icmp_seq is 16 bits (below {WRAP}): not what iputils ping prints"


@dataclass
class _Reply:
    line: int
    rtt: int
    half: int  # half a unit of the printed RTT, ns
    stamp: int | None
    ttl: int | None
    dups: int = 0


@dataclass
class _Run:
    """One ping run: its header line to its statistics."""

    line: int
    addr: str
    src_addr: str
    size: int
    replies: dict[int, _Reply] = field(default_factory=dict)
    errors: dict[int, tuple[int, str, int | None]] = field(default_factory=dict)
    refused: set[int] = field(default_factory=set)
    unplaced: int = 0  # refused lines whose sequence number is unknown
    total: tuple[int, int, int, int, int] | None = None  # line, sent, received, dups, errors
    rtt: tuple[int, float, float, float] | None = None
    last_seq: int = 0

    def unwrap(self, seq: int) -> int:
        """The 16-bit ``seq`` as the packet count nearest the highest one seen so far."""
        value = seq + WRAP * round((self.last_seq - seq) / WRAP) if self.last_seq else seq
        self.last_seq = max(self.last_seq, value)
        return value


def parse_ping(text: str, name: str, m: Mapping) -> Parsed:
    """The output of one or more ping runs -> one result per sequence number."""
    out = Parsed()
    runs: list[_Run] = []
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        stamp, body = split_stamp(line)
        if h := _HEADER.match(body):
            runs.append(_header(h, i, m))
            continue
        if not runs:
            out.problems.append(Problem(name, i, "not iputils ping output: no 'PING host "
                                        "(addr)' line before this one"))
            continue
        why = _line(runs[-1], i, stamp, body, m)
        if why:
            out.problems.append(Problem(name, i, why))
    if not runs and not out.problems:
        out.problems.append(Problem(name, 1, "not iputils ping output: no 'PING' line"))
    for run in runs:
        out.extend(_results(run, name, m))
    return out


def _header(h: re.Match[str], i: int, m: Mapping) -> _Run:
    inner = h.group(2)
    addr = inner.rsplit("(", 1)[1].rstrip(")") if "(" in inner else inner
    return _Run(i, addr, h.group(3) or "", int(h.group(4)) + 8)


def _line(run: _Run, i: int, stamp: str | None, body: str, m: Mapping) -> str | None:
    """Take one line of a run; the reason if it is refused."""
    if r := _REPLY.match(body):
        return _reply(run, i, stamp, r, m)
    if e := _ERROR.match(body):
        if int(e.group(2)) >= WRAP:
            return _refuse(run, body, _NOT_16_BITS)
        seq = run.unwrap(int(e.group(2)))
        run.errors[seq] = (i, f"From {e.group(1)}: {e.group(3)}"[:200],
                           parse_stamp(stamp) if stamp else None)
        return None
    if (n := _NO_ANSWER.match(body)) or _STATS.match(body) or _PIPE.match(body):
        if n and int(n.group(1)) >= WRAP:
            return _refuse(run, body, _NOT_16_BITS)
        if n:
            run.unwrap(int(n.group(1)))
        return None
    if t := _TOTAL.match(body):
        sent = int(t.group(1))
        if sent > MAX_PACKETS:
            return f"{sent} packets: more than {MAX_PACKETS} in one run"
        run.total = (i, sent, int(t.group(2)), int(t.group(3) or 0), int(t.group(5) or 0))
        return None
    if r2 := _RTT.match(body):
        run.rtt = (i, float(r2.group(1)), float(r2.group(2)), float(r2.group(3)))
        return None
    return _refuse(run, body, "not a line of iputils ping output")


def _refuse(run: _Run, body: str, why: str) -> str:
    """Refuse a line; remember its sequence number (if it names one) so that packet is neither
    a reply nor a loss."""
    s = _SEQ.search(body)
    if s and int(s.group(1)) < WRAP:
        run.refused.add(run.unwrap(int(s.group(1))))
    elif "bytes from" in body or "icmp_seq" in body:
        run.unplaced += 1
    return f"{why}: {body[:80]!r}"


def _reply(run: _Run, i: int, stamp: str | None, r: re.Match[str], m: Mapping) -> str | None:
    try:
        rtt, half = ms_to_ns(r.group(5))
        ns = parse_stamp(stamp) if stamp else None
    except (ValueError, OverflowError) as exc:
        return _refuse(run, r.group(0), str(exc))
    if tmax := over_tmax(rtt, m):
        return _refuse(run, r.group(0), tmax)
    if int(r.group(3)) >= WRAP:
        return _refuse(run, r.group(0), _NOT_16_BITS)
    seq = run.unwrap(int(r.group(3)))
    rest = r.group(6).strip()
    if rest == "(DUP!)":
        if seq not in run.replies:
            run.refused.add(seq)
            return f"a duplicate of icmp_seq={seq}, whose first reply is not imported"
        run.replies[seq].dups += 1
        return None
    if rest:
        return _refuse(run, r.group(0), f"a reply marked {rest!r}")
    if seq in run.replies:
        return _refuse(run, r.group(0), f"a second reply to icmp_seq={seq} not marked DUP!")
    ttl = int(r.group(4)) if r.group(4) else None
    run.replies[seq] = _Reply(i, rtt, half, None if ns is None else ns - rtt, ttl)
    return None


def _results(run: _Run, name: str, m: Mapping) -> Parsed:
    out = Parsed()
    dst = m.dst_for(run.addr)
    if m.src is None or dst is None:
        out.problems.append(Problem(name, run.line, f"no site/carrier for {run.addr}: give "
                                    "--src and --dst (or --map ADDR=SITE/CARRIER)"))
        return out
    size = run.size
    if m.size is not None and m.size != size:
        out.problems.append(Problem(name, run.line, f"ping says {size - 8} data bytes (ICMP "
                                    f"message {size}), --size says {m.size}"))
        return out
    last = max([run.total[1] if run.total else 0, *run.replies, *run.errors, *run.refused])
    if last > MAX_PACKETS:
        out.problems.append(Problem(name, run.line, f"sequence numbers reach {last}: more than "
                                    f"{MAX_PACKETS} packets in one run"))
        return out
    times, why = _send_times(run, last, m)
    if why:
        out.problems.append(Problem(name, run.line, why))
        return out
    lost = [s for s in range(1, last + 1)
            if s not in run.replies and s not in run.errors and s not in run.refused]
    expected = None if run.total is None else run.total[1] - run.total[2] - run.total[4]
    if run.unplaced and expected is not None and len(lost) > expected:
        out.problems.append(Problem(name, run.line, f"{run.unplaced} refused reply lines name no"
                                    " icmp_seq, so which packets were lost is unknown: none "
                                    "of this run's losses are imported"))
        lost = []
    probe = m.probe_id or default_probe_id(m.src)
    src = type(m.src)(m.src.site, m.src.carrier, run.src_addr)
    type_p = TypeP("icmp", ip_version(run.addr), size, m.dscp)

    rows: list[tuple[int, int, int | None, dict[str, Any]]] = []
    rows += [(seq, rep.line, rep.rtt, {"dup": rep.dups, "reply_ttl": rep.ttl})
             for seq, rep in run.replies.items()]
    rows += [(seq, line, None, {"error": text}) for seq, (line, text, _) in run.errors.items()]
    rows += [(seq, run.total[0] if run.total else run.line, None, {}) for seq in lost]
    for seq, line, rtt, kw in sorted(rows, key=lambda row: row[0]):
        try:
            out.add(line, make_result(probe_id=probe, src=src, dst=dst, method=Method.ICMP,
                                      type_p=type_p, seq=seq, sent_at_ns=times[seq], rtt_ns=rtt,
                                      tmax_ns=m.tmax_ns, **kw))
        except (RecordError, ValueError) as exc:
            out.problems.append(Problem(name, line, str(exc)))
    out.checks.append(_check(run, name, len(lost)))
    return out


def _send_times(run: _Run, last: int, m: Mapping) -> tuple[dict[int, int], str | None]:
    """Send time of every packet 1..last (:func:`place_sends`), or why there is none."""
    stamped = {s: r.stamp for s, r in run.replies.items() if r.stamp is not None}
    if stamped and len(stamped) != len(run.replies):
        return {}, "some replies have a [timestamp] (ping -D) and some do not"
    if not stamped and m.start_ns is None:
        return {}, "no [timestamp] (ping -D): give --start (and --interval)"
    return place_sends(stamped, min([1, *run.replies, *run.errors]), last, m)


def _check(run: _Run, name: str, lost: int) -> Check:
    """ping's statistics lines against what was imported."""
    dups = sum(r.dups for r in run.replies.values())
    delays = Delays.of([(r.rtt, r.half) for r in run.replies.values()])
    mine = (f"{len(run.replies) + len(run.errors) + lost} sent, {len(run.replies)} received, "
            f"{dups} duplicates, {len(run.errors)} errors, {lost} lost"
            + (f", {delays.text()}" if delays else ""))
    label = f"ping {run.addr}"
    if run.total is None:
        return Check(name, run.line, label, "no statistics lines", mine,
                     "the output ends before ping's statistics: packets after the last line "
                     "printed are not known")
    line, sent, received, dup, errors = run.total
    tool = (f"{sent} sent, {received} received, {dup} duplicates, {errors} errors, "
            f"{sent - received - errors} lost")
    if run.rtt is not None:
        tool += f", min/avg/max {run.rtt[1]:.3f}/{run.rtt[2]:.3f}/{run.rtt[3]:.3f} ms"
    whys = []
    if run.refused or run.unplaced:
        whys.append(f"{len(run.refused) + run.unplaced} lines refused (listed above): those "
                    "packets are not imported")
    elif (len(run.replies), dups, len(run.errors), lost) != (received, dup, errors,
                                                            sent - received - errors):
        whys.append("the lines printed do not add up to ping's statistics")
    if run.rtt is not None and not whys:
        why = delays_disagree(delays, *run.rtt[1:], 0.0005)
        if why:
            whys.append(why)
    return Check(name, line, label, tool, mine, "; ".join(whys))
