"""The result record: one versioned shape for every measurement, import and upload.

Probes (ICMP, STAMP, traceroute), importers (csv, ping, fping, RIPE Atlas), the collector and the
analyzer all speak this record. A record is one *singleton* in the sense of RFC 2330 §11: one
packet sent at ``sent_at_ns`` on one path, with its Type-P (RFC 2330 §13, RFC 7679 §3.8.1).

Loss is data: a lost packet is a record with ``status == "lost"`` and no delay. An error (send
failure, malformed reply, clock step) is ``status == "error"`` with ``error`` naming the cause and
is never counted as loss (RFC 7680 §2.5 counts corrupted packets as lost only once they were on
the wire; a packet we failed to send was never a sample).

A record is valid or is not made: constructing a :class:`Result` (or a :class:`TypeP`) checks
every rule of :mod:`ixmeter.core.rules` on its values and raises :class:`RecordError` naming the
field. Schema version 1 (the only one; nothing has shipped).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, NoReturn

from ixmeter.core.errors import RecordError
from ixmeter.core.rules import (
    BOUNDS,
    CODE_COLUMNS,
    DETAIL_MAX_CHARS,
    HOP_ADDR_MAX_CHARS,
    HOP_BOUNDS,
    IDENT_MAX_CHARS,
    SCHEMA_VERSION,
    STATUS_CODES,
    Bound,
    ErrorKind,
    Method,
    Status,
    TimestampSource,
    outside,
    result_faults,
    text_problem,
    type_p_problem,
)

__all__ = ["SCHEMA_VERSION", "ErrorKind", "Hop", "Method", "Result", "Status",
           "TimestampSource", "TypeP", "from_dict", "path_id"]


@dataclass(frozen=True, slots=True)
class TypeP:
    """The packet type a metric is defined for (RFC 2330 §13; RFC 7679 §3.8.1).

    ``size`` is the IP payload length in octets (ICMP message or UDP payload incl. header for
    ICMP; the UDP payload for STAMP). Results of different Type-P are never compared. Checked
    on construction (:func:`ixmeter.core.rules.type_p_problem`).
    """

    protocol: str  # "icmp" | "udp" | "tcp"
    ip_version: int  # 4 | 6
    size: int
    dscp: int = 0
    dst_port: int | None = None

    def __post_init__(self) -> None:
        problem = type_p_problem(self.protocol, self.ip_version, self.size, self.dscp,
                                 self.dst_port)
        if problem is not None:
            raise RecordError(f"field 'type_p.{problem[0]}': {problem[1]}")

    def key(self) -> str:
        """A stable text key, e.g. ``icmp/v4/64/dscp0`` or ``udp/v6/44/dscp46/862``."""
        port = f"/{self.dst_port}" if self.dst_port is not None else ""
        return f"{self.protocol}/v{self.ip_version}/{self.size}/dscp{self.dscp}{port}"


@dataclass(frozen=True, slots=True)
class Hop:
    """One traceroute hop: the TTL sent, the replying address (None: no reply), its RTT.
    Checked as part of its :class:`Result` (its RTT is bounded by the result's Tmax)."""

    ttl: int
    addr: str | None
    rtt_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """One probe packet and its outcome. Times are integers in nanoseconds.

    ``sent_at_ns`` is wall-clock UTC (a label, RFC 2330 §10.2); delays come from the timestamp
    source named in ``ts_source``. ``fwd_ns``/``bwd_ns`` are one-way delays (RFC 7679 §3.4),
    ``clock_error_ns`` the summed error bound of both ends (RFC 7679 §3.7.3), ``src_synced`` and
    ``dst_synced`` the S bits (RFC 4656 §4.1.2). ``dup`` counts extra copies received (the first
    copy counts, RFC 7679 §3.4). ``hops`` is set by traceroute only. The value rules are
    :mod:`ixmeter.core.rules`'.
    """

    probe_id: str
    method: Method
    src_site: str
    src_carrier: str
    dst_site: str
    dst_carrier: str
    src_addr: str
    dst_addr: str
    type_p: TypeP
    seq: int
    sent_at_ns: int
    status: Status
    tmax_ns: int
    ts_source: TimestampSource
    rtt_ns: int | None = None
    fwd_ns: int | None = None
    bwd_ns: int | None = None
    clock_error_ns: int | None = None
    src_synced: bool | None = None
    dst_synced: bool | None = None
    error: ErrorKind | None = None
    error_detail: str | None = None
    dup: int = 0
    reply_ttl: int | None = None
    session: str = ""
    hops: tuple[Hop, ...] = field(default_factory=tuple)
    v: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        _check(self)

    @property
    def path_id(self) -> str:
        """Directed path identifier ``src_site/src_carrier>dst_site/dst_carrier``."""
        return path_id(self.src_site, self.src_carrier, self.dst_site, self.dst_carrier)

    @property
    def lost(self) -> bool:
        return self.status is Status.LOST

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the spool's form; :func:`from_dict` reads it back)."""
        d = asdict(self)
        d["hops"] = [[h.ttl, h.addr, h.rtt_ns] for h in self.hops]
        return d


def path_id(src_site: str, src_carrier: str, dst_site: str, dst_carrier: str) -> str:
    """The directed path key used by store, analyzer and dashboard:
    ``src_site/src_carrier>dst_site/dst_carrier`` (:func:`parse_path_id` reads it back)."""
    return f"{src_site}/{src_carrier}>{dst_site}/{dst_carrier}"


def parse_path_id(text: str) -> tuple[str, str, str, str]:
    """(src_site, src_carrier, dst_site, dst_carrier) of a :func:`path_id`; ValueError for
    anything else."""
    src, sep, dst = text.partition(">")
    ends = (*src.split("/"), *dst.split("/"))
    if not sep or len(ends) != 4 or not all(ends) or ">" in dst:
        raise ValueError(f"not a path id {text!r}: expected src_site/src_carrier>"
                         "dst_site/dst_carrier")
    return ends[0], ends[1], ends[2], ends[3]


# -- the checks of a Result, on scalars -----------------------------------------------------------
_NONE: type = type(None)
_INT: set[type] = {int}
_OPT_INT: set[type] = {int, _NONE}
_OPT_BOOL: set[type] = {bool, _NONE}
# Exact types (``type(x) is int``: ``True`` is not an integer), every field in order.
_TYPES: dict[str, set[type]] = {
    "probe_id": {str}, "method": {Method}, "src_site": {str}, "src_carrier": {str},
    "dst_site": {str}, "dst_carrier": {str}, "src_addr": {str}, "dst_addr": {str},
    "type_p": {TypeP}, "seq": _INT, "sent_at_ns": _INT, "status": {Status}, "tmax_ns": _INT,
    "ts_source": {TimestampSource}, "rtt_ns": _OPT_INT, "fwd_ns": _OPT_INT, "bwd_ns": _OPT_INT,
    "clock_error_ns": _OPT_INT, "src_synced": _OPT_BOOL, "dst_synced": _OPT_BOOL,
    "error": {ErrorKind, _NONE}, "error_detail": {str, _NONE}, "dup": _INT,
    "reply_ttl": _OPT_INT, "session": {str}, "hops": {tuple}, "v": _INT}
_values = operator.attrgetter(*_TYPES)
_GOOD_TYPES: set[tuple[type, ...]] = set()  # type signatures seen valid (at most 2**13)
_IDENTS = ("probe_id", "src_site", "src_carrier", "dst_site", "dst_carrier", "src_addr",
           "dst_addr")
_identity = operator.attrgetter(*_IDENTS, "session")
_GOOD_IDENTITIES: set[tuple[str, ...]] = set()  # identity strings seen valid (bounded)
_INT_BOUNDS = tuple(b for b in BOUNDS if b.column not in CODE_COLUMNS)  # codes: the enums
_bound_values = operator.attrgetter(*(b.column for b in _INT_BOUNDS))
_LOWS = tuple(b.low for b in _INT_BOUNDS)
_HIGHS = tuple(b.high if isinstance(b.high, int) else None for b in _INT_BOUNDS)  # None: tmax
if {b.high for b in BOUNDS + HOP_BOUNDS if isinstance(b.high, str)} != {"tmax_ns"}:
    raise ImportError("a bound by another column than tmax_ns: _check must fetch it")
_STATUS_CODE = {Status(s): i for i, s in enumerate(STATUS_CODES)}


def _check(r: Result) -> None:
    """Every rule of :mod:`ixmeter.core.rules` on one record; the first broken one raises. The
    type signatures and identity strings of a batch repeat: each is checked once, then
    remembered."""
    signature = tuple(map(type, _values(r)))
    if signature not in _GOOD_TYPES:
        _check_types(r, signature)
    identity = _identity(r)
    if identity not in _GOOD_IDENTITIES:
        _check_identity(identity)
    if r.error_detail:
        _check_text("error_detail", r.error_detail, DETAIL_MAX_CHARS)
    tmax = r.tmax_ns
    for b, low, high, value in zip(_INT_BOUNDS, _LOWS, _HIGHS, _bound_values(r), strict=True):
        if value is not None and outside(value, low, tmax if high is None else high):
            _out_of_bounds(r, b, value)
    for name, reason, broken in result_faults(_STATUS_CODE[r.status], r.rtt_ns is not None,
                                              r.fwd_ns is not None, r.error is not None):
        if broken:
            raise RecordError(f"field {name!r}: {reason}")
    if r.hops:
        _check_hops(r.hops, r.tmax_ns)


def _out_of_bounds(r: Result, b: Bound, value: int) -> NoReturn:
    high = getattr(r, b.high) if isinstance(b.high, str) else b.high
    raise RecordError(f"field {b.column!r}: {b.message(value, high)}")


def _check_types(r: Result, signature: tuple[type, ...]) -> None:
    for (name, allowed), kind in zip(_TYPES.items(), signature, strict=True):
        if kind not in allowed:
            expected = " or ".join(sorted("null" if t is _NONE else t.__name__ for t in allowed))
            raise RecordError(f"field {name!r}: expected {expected}, got {getattr(r, name)!r}")
    if len(_GOOD_TYPES) < 4096:
        _GOOD_TYPES.add(signature)


def _check_identity(identity: tuple[str, ...]) -> None:
    problem = text_problem(identity[:-1], IDENT_MAX_CHARS)
    if problem is not None:
        raise RecordError(f"field {_IDENTS[problem[0]]!r}: {problem[1]}")
    _check_text("session", identity[-1], IDENT_MAX_CHARS)
    if len(_GOOD_IDENTITIES) >= 4096:
        _GOOD_IDENTITIES.clear()
    _GOOD_IDENTITIES.add(identity)


def _check_text(name: str, value: str, limit: int) -> None:
    problem = text_problem((value,), limit, empty_ok=True)
    if problem is not None:
        raise RecordError(f"field {name!r}: {problem[1]}")


def _check_hops(hops: tuple[Hop, ...], tmax_ns: int) -> None:
    for i, hop in enumerate(hops):
        where = f"hops[{i}]"
        if type(hop) is not Hop:
            raise RecordError(f"field {where!r}: expected a Hop, got {hop!r}")
        if type(hop.ttl) is not int or not (hop.rtt_ns is None or type(hop.rtt_ns) is int):
            raise RecordError(f"field {where!r}: expected integer ttl and rtt_ns, got {hop!r}")
        for b in HOP_BOUNDS:
            value = getattr(hop, b.column)
            high = tmax_ns if isinstance(b.high, str) else b.high
            if value is not None and outside(value, b.low, high):
                raise RecordError(f"field '{where}.{b.column}': {b.message(value, high)}")
        problem = text_problem((hop.addr,), HOP_ADDR_MAX_CHARS) if hop.addr is not None else None
        if problem is not None:
            raise RecordError(f"field '{where}.addr': {problem[1]}")


# -- the spool's form ------------------------------------------------------------------------------
_FIELDS = tuple(f.name for f in fields(Result))
_REQUIRED = frozenset(f.name for f in fields(Result)
                      if f.default is MISSING and f.default_factory is MISSING)
_ENUMS: dict[str, Any] = {"method": Method, "status": Status, "ts_source": TimestampSource,
                          "error": ErrorKind}
_TYPE_P_KEYS = frozenset(f.name for f in fields(TypeP))


def from_dict(d: Mapping[str, Any]) -> Result:
    """The record of :meth:`Result.to_dict`'s dict (parsed JSON); raise :class:`RecordError`
    naming the field. Enums, the Type-P and hops are converted, every other value is taken
    as it is and judged by :class:`Result`."""
    if not isinstance(d, Mapping):
        raise RecordError(f"result: expected an object, got {type(d).__name__}")
    unknown = sorted(map(str, d.keys() - set(_FIELDS)))
    if unknown:
        raise RecordError(f"field {unknown[0]!r}: unknown key")
    missing = sorted(_REQUIRED - d.keys())
    if missing:
        raise RecordError(f"field {missing[0]!r}: missing")
    kw = dict(d)
    for name, kind in _ENUMS.items():
        if kw.get(name) is not None:
            kw[name] = _enum(name, kw[name], kind)
    kw["type_p"] = _type_p(kw["type_p"])
    if "hops" in kw:
        kw["hops"] = _hops(kw["hops"])
    return Result(**kw)


def _enum(name: str, value: Any, kind: Any) -> Any:
    try:
        return kind(value) if isinstance(value, str) else kind(None)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise RecordError(f"field {name!r}: {value!r} is not one of {allowed}") from None


def _type_p(value: Any) -> TypeP:
    if not (isinstance(value, Mapping) and value.keys() <= _TYPE_P_KEYS
            and {"protocol", "ip_version", "size"} <= value.keys()):
        raise RecordError(f"field 'type_p': expected an object with protocol, ip_version, "
                          f"size and optionally dscp and dst_port, got {value!r}")
    return TypeP(**value)


def _hops(value: Any) -> tuple[Hop, ...]:
    if not isinstance(value, list) or not all(
            isinstance(h, list) and len(h) == 3 for h in value):
        raise RecordError(f"field 'hops': expected a list of [ttl, addr, rtt_ns], got {value!r}")
    return tuple(Hop(*h) for h in value)
