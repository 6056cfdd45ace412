"""What every importer shares: the problems list, the mapping options and Result building."""

from __future__ import annotations

from dataclasses import dataclass, field

from ixmeter.record import Method, Result, Status, TimestampSource, TypeP


@dataclass(frozen=True, slots=True)
class Problem:
    """A row that could not be imported: file, 1-based line, reason."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class End:
    """One end of a path: site and carrier (and an address when known)."""

    site: str
    carrier: str
    addr: str = ""


@dataclass
class Mapping:
    """How to label imported packets that do not name their sites and carriers."""

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

    def dst_for(self, addr: str) -> End | None:
        return self.by_addr.get(addr) or (
            End(self.dst.site, self.dst.carrier, addr) if self.dst else None)


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


def ip_version(addr: str) -> int:
    return 6 if ":" in addr else 4


def make_result(*, probe_id: str, src: End, dst: End, method: Method, type_p: TypeP, seq: int,
                sent_at_ns: int, rtt_ns: int | None, tmax_ns: int, dup: int = 0,
                error: str | None = None, reply_ttl: int | None = None) -> Result:
    """An imported singleton (``ts_source = imported``); rtt None = lost."""
    from ixmeter.record import ErrorKind

    status = Status.ERROR if error else (Status.LOST if rtt_ns is None else Status.RECEIVED)
    default = "::" if type_p.ip_version == 6 else "0.0.0.0"
    return Result(
        probe_id=probe_id, method=method, src_site=src.site, src_carrier=src.carrier,
        dst_site=dst.site, dst_carrier=dst.carrier, src_addr=src.addr or default,
        dst_addr=dst.addr or default, type_p=type_p, seq=seq, sent_at_ns=sent_at_ns,
        status=status, tmax_ns=tmax_ns, ts_source=TimestampSource.IMPORTED,
        rtt_ns=None if error else rtt_ns, dup=dup, reply_ttl=reply_ttl,
        error=ErrorKind.OTHER if error else None, error_detail=error)


def default_probe_id(src: End) -> str:
    return f"import-{src.site}-{src.carrier}"
