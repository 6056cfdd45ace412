"""What every importer shares: problems, summary checks, the mapping options, Result building.

An importer is a pure function ``(text, file name, Mapping) -> Parsed``. Every line (or JSON
result) the source printed becomes records that say what it says, or a :class:`Problem` naming
``file:line`` and why; a refused line never becomes a loss. Where the tool printed its own
summary (ping's ``N packets transmitted``, fping's ``xmt/rcv/%loss``, Atlas's ``sent``/``rcvd``/
``min``/``avg``/``max``), a :class:`Check` compares it with what was imported and says why any
figure differs.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ixmeter.core.record import ErrorKind, Hop, Method, Result, Status, TimestampSource, TypeP


@dataclass(frozen=True, slots=True)
class Problem:
    """A line that could not be imported as what it says: file, 1-based line, reason."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Check:
    """The tool's own summary of a run against what was imported from its lines."""

    file: str
    line: int
    run: str  # e.g. "ping 198.18.3.10" or "atlas result [3]"
    tool: str  # what the tool said, e.g. "5 sent, 3 received, 2 lost"
    imported: str
    why: str = ""  # empty when the two agree

    @property
    def agrees(self) -> bool:
        return not self.why

    def __str__(self) -> str:
        if self.agrees:
            return f"{self.file}:{self.line}: {self.run}: agrees with the tool's summary " \
                   f"({self.tool})"
        return f"{self.file}:{self.line}: {self.run}: the tool says {self.tool}; imported " \
               f"{self.imported}: {self.why}"


@dataclass
class Parsed:
    """An importer's output: records (each with the line it came from), problems, checks."""

    results: list[Result] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def add(self, line: int, result: Result) -> None:
        self.results.append(result)
        self.lines.append(line)

    def extend(self, other: Parsed) -> None:
        self.results.extend(other.results)
        self.lines.extend(other.lines)
        self.problems.extend(other.problems)
        self.checks.extend(other.checks)


@dataclass(frozen=True, slots=True)
class End:
    """One end of a path: site and carrier (and an address when known)."""

    site: str
    carrier: str
    addr: str = ""


@dataclass
class Mapping:
    """How to label imported packets that do not name their sites and carriers, and the
    options that say what the source did not (Type-P size, DSCP, Tmax, times)."""

    probe_id: str | None = None
    src: End | None = None
    dst: End | None = None
    by_addr: dict[str, End] = field(default_factory=dict)  # destination address -> end
    by_probe: dict[str, End] = field(default_factory=dict)  # Atlas probe id -> source end
    size: int | None = None
    dscp: int = 0
    tmax_ns: int = 3_000_000_000
    start_ns: int | None = None
    interval_ns: int = 1_000_000_000
    tz: str | None = None  # zone for times written without a UTC offset (csv)
    sites: dict[str, frozenset[str]] | None = None  # inventory: site -> its carriers

    def dst_for(self, addr: str) -> End | None:
        return self.by_addr.get(addr) or (
            End(self.dst.site, self.dst.carrier, addr) if self.dst else None)

    def unknown_end(self, site: str, carrier: str) -> str | None:
        """Why ``site``/``carrier`` is not an end of the inventory (None if it is, or if no
        inventory was given)."""
        if self.sites is None:
            return None
        if site not in self.sites:
            return f"site {site!r} is not in the inventory"
        if carrier not in self.sites[site]:
            return f"carrier {carrier!r} has no presence at site {site!r} in the inventory"
        return None


def parse_end(text: str) -> End:
    """``SITE/CARRIER`` -> :class:`End`; raise ValueError otherwise."""
    site, sep, carrier = text.partition("/")
    if not sep or not site or not carrier:
        raise ValueError(f"{text!r} is not SITE/CARRIER")
    return End(site, carrier)


MAX_NS = 2**63 - 1  # int64 nanoseconds: times up to the year 2262


def check_time(ns: int) -> int:
    """A send time the store can hold (0 <= ns < 2**63), else ValueError."""
    if not 0 <= ns <= MAX_NS:
        raise ValueError(f"time {ns} ns is outside 1970..2262")
    return ns


def parse_local_time(text: str, tz: str | None) -> int:
    """ISO 8601 -> ns since the epoch. A time without a UTC offset is read in ``tz``; without
    ``tz`` it is refused (reading it as UTC would shift busy hours by the zone's offset). A
    local time that a DST change makes ambiguous or non-existent is refused too."""
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time "
                         "(write e.g. 2026-01-05T08:00:00+08:00)") from None
    if dt.tzinfo is None:
        if tz is None:
            raise ValueError(f"{text!r} has no UTC offset: write e.g. {text.strip()}+08:00, "
                             "or give --tz ZONE (e.g. --tz Asia/Shanghai)")
        zone = zone_info(tz)
        early, late = dt.replace(tzinfo=zone, fold=0), dt.replace(tzinfo=zone, fold=1)
        if early.utcoffset() != late.utcoffset():
            raise ValueError(f"{text!r} is ambiguous or does not exist in {tz} (a DST change):"
                             " write it with its UTC offset")
        dt = early
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return check_time((delta.days * 86_400 + delta.seconds) * 1_000_000_000
                      + delta.microseconds * 1000)


def zone_info(tz: str) -> ZoneInfo:
    """The IANA zone ``tz``; ValueError naming it if unknown."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r} (write e.g. Asia/Shanghai)") from None


_STAMP = re.compile(r"^\[(\d+(?:\.\d+)?)\] (.*)$")


def split_stamp(line: str) -> tuple[str | None, str]:
    """A line of ``ping -D`` / ``fping -D`` output -> (its ``[seconds]`` prefix or None, the
    rest)."""
    s = _STAMP.match(line)
    return (s.group(1), s.group(2)) if s else (None, line)


def parse_stamp(text: str) -> int:
    """A ``[1767225600.012500]`` style Unix time in seconds -> ns, exactly (no float)."""
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(whole) > 11:
        raise ValueError(f"bad timestamp {text!r}")
    return check_time(int(whole) * 1_000_000_000 + int(frac.ljust(9, "0")[:9] or "0"))


def ms_to_ns(text: str) -> tuple[int, int]:
    """A decimal RTT in ms as printed -> (ns, half a unit of its last printed digit in ns), so
    a figure computed from printed values can be compared with one computed from exact ones."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a delay in ms")
    decimals = len(text.partition(".")[2]) if "." in text else 0
    return round(value * 1e6), round(0.5 * 10 ** (6 - decimals))


def ip_version(addr: str) -> int:
    return 6 if ":" in addr else 4


def make_result(*, probe_id: str, src: End, dst: End, method: Method, type_p: TypeP, seq: int,
                sent_at_ns: int, rtt_ns: int | None, tmax_ns: int, dup: int = 0,
                error: str | None = None, reply_ttl: int | None = None,
                error_kind: ErrorKind = ErrorKind.OTHER, hops: tuple[Hop, ...] = (),
                lost: bool | None = None) -> Result:
    """An imported singleton (``ts_source = imported``); rtt None = lost, unless ``lost`` is
    given (traceroute records say themselves whether the destination answered)."""
    if error:
        status = Status.ERROR
    elif lost is not None:
        status = Status.LOST if lost else Status.RECEIVED
    else:
        status = Status.LOST if rtt_ns is None else Status.RECEIVED
    unspecified = "::" if type_p.ip_version == 6 else "0.0.0.0"
    return Result(
        probe_id=probe_id, method=method, src_site=src.site, src_carrier=src.carrier,
        dst_site=dst.site, dst_carrier=dst.carrier, src_addr=src.addr or unspecified,
        dst_addr=dst.addr or unspecified, type_p=type_p, seq=seq, sent_at_ns=sent_at_ns,
        status=status, tmax_ns=tmax_ns, ts_source=TimestampSource.IMPORTED,
        rtt_ns=None if error or status is Status.LOST else rtt_ns, dup=dup,
        reply_ttl=None if error else reply_ttl, error=error_kind if error else None,
        error_detail=error, hops=hops)


def default_probe_id(src: End) -> str:
    return f"import-{src.site}-{src.carrier}"


def over_tmax(rtt_ns: int, m: Mapping) -> str | None:
    """Why a reply cannot be a sample under Tmax (RFC 7680 §2.4: a packet that arrives after
    Tmax is lost); the value is never reshaped, the line is refused and --tmax named."""
    if rtt_ns > m.tmax_ns:
        return (f"RTT {rtt_ns / 1e6:g} ms is above Tmax {m.tmax_ns / 1e9:g} s: give --tmax "
                "at least the tool's own timeout (ping -W, fping -t, Atlas timeout)")
    return None


@dataclass(frozen=True, slots=True)
class Delays:
    """min/avg/max of printed RTTs and the largest half-unit of their printing (ns)."""

    n: int
    low: int
    mean: float
    high: int
    slack: int

    @classmethod
    def of(cls, values: Sequence[tuple[int, int]]) -> Delays | None:
        if not values:
            return None
        rtts = [v for v, _ in values]
        return cls(len(rtts), min(rtts), sum(rtts) / len(rtts), max(rtts),
                   max(h for _, h in values))

    def text(self) -> str:
        return f"min/avg/max {self.low / 1e6:.3f}/{self.mean / 1e6:.3f}/{self.high / 1e6:.3f} ms"


def delays_disagree(mine: Delays | None, low: float, mean: float, high: float,
                    printed_half_ms: float) -> str:
    """Why the tool's min/avg/max (ms, printed to ``printed_half_ms`` x 2) differ from the
    imported ones beyond the printing of both; empty if they agree."""
    if mine is None:
        return "no RTT imported, the tool gives min/avg/max"
    slack = mine.slack / 1e6 + printed_half_ms + 1e-9
    bad = [name for name, tool, imp in (("min", low, mine.low / 1e6),
                                         ("avg", mean, mine.mean / 1e6),
                                         ("max", high, mine.high / 1e6))
           if abs(tool - imp) > slack]
    if bad:
        return f"{'/'.join(bad)} differ by more than the printed precision ({slack:.4f} ms)"
    return ""


def place_sends(stamped: dict[int, int], first: int, last: int, m: Mapping
                ) -> tuple[dict[int, int], str | None]:
    """Send times of packets ``first..last`` (sequence numbers): where the tool printed a
    time (``stamped``), that one; a packet without one between its neighbours' real send
    times, linearly by sequence number, so it is never placed before the packet that preceded
    it; before the first or after the last stamped packet ``--interval`` apart; with no stamp
    at all ``--start`` + (seq - first) x ``--interval``. Or why no time can be given."""
    if not stamped:
        if m.start_ns is None:
            return {}, "the output has no timestamps: give --start (and --interval)"
        return {s: m.start_ns + (s - first) * m.interval_ns for s in range(first, last + 1)}, \
            None
    known = sorted(stamped)
    times: dict[int, int] = {}
    for s in range(first, last + 1):
        if s in stamped:
            times[s] = stamped[s]
            continue
        k = bisect.bisect_left(known, s)
        lo, hi = (known[k - 1] if k else None), (known[k] if k < len(known) else None)
        if lo is not None and hi is not None:
            times[s] = stamped[lo] + (s - lo) * (stamped[hi] - stamped[lo]) // (hi - lo)
        elif lo is not None:
            times[s] = stamped[lo] + (s - lo) * m.interval_ns
        else:
            assert hi is not None
            times[s] = stamped[hi] - (hi - s) * m.interval_ns
        if times[s] < 0:
            return {}, f"packet {s} would be sent before 1970: check --interval"
    return times, None
