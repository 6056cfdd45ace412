"""The result record: one versioned shape for every measurement, import and upload.

Probes (ICMP, STAMP, traceroute), importers (csv, ping, fping, RIPE Atlas), the collector and the
analyzer all speak this record. A record is one *singleton* in the sense of RFC 2330 §11: one
packet sent at ``sent_at_ns`` on one path, with its Type-P (RFC 2330 §13, RFC 7679 §3.8.1).

Loss is data: a lost packet is a record with ``status == "lost"`` and no delay. An error (send
failure, malformed reply, clock step) is ``status == "error"`` with ``error`` naming the cause and
is never counted as loss (RFC 7680 §2.5 counts corrupted packets as lost only once they were on
the wire; a packet we failed to send was never a sample).

Schema history (readers keep a branch per version, see :func:`from_dict`):
  v1 — first version.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from ixmeter.errors import RecordError

SCHEMA_VERSION = 1
_E = TypeVar("_E", bound=enum.StrEnum)


class Method(enum.StrEnum):
    """Measurement method; one module per method under ``probes/methods``."""

    ICMP = "icmp"
    STAMP = "stamp"
    TRACEROUTE = "traceroute"


class Status(enum.StrEnum):
    """Outcome of one probe packet."""

    RECEIVED = "received"
    LOST = "lost"  # not received within Tmax (RFC 7680 §2.4)
    ERROR = "error"  # never a valid sample: see ``Result.error``


class ErrorKind(enum.StrEnum):
    """Why a record is an error rather than a sample."""

    SEND_ERROR = "send_error"
    MALFORMED_REPLY = "malformed_reply"
    CLOCK_STEP = "clock_step"  # wall and monotonic intervals disagree (RFC 2681 §2.5)
    CLOCK_FAULT = "clock_fault"  # a one-way delay <= 0 (RFC 7679 §3.5)
    LOCAL_DROP = "local_drop"  # queue full, late scheduling: the probe never left
    OTHER = "other"


class TimestampSource(enum.StrEnum):
    """Where the send/receive times came from (RFC 7679 §3.7.2 host time)."""

    HARDWARE = "hardware"
    KERNEL = "kernel"
    USER = "user"
    IMPORTED = "imported"


@dataclass(frozen=True, slots=True)
class TypeP:
    """The packet type a metric is defined for (RFC 2330 §13; RFC 7679 §3.8.1).

    ``size`` is the IP payload length in octets (ICMP message or UDP payload incl. header for
    ICMP; the UDP payload for STAMP). Results of different Type-P are never compared.
    """

    protocol: str  # "icmp" | "udp" | "tcp"
    ip_version: int  # 4 | 6
    size: int
    dscp: int = 0
    dst_port: int | None = None

    def key(self) -> str:
        """A stable text key, e.g. ``icmp/v4/64/dscp0`` or ``udp/v6/44/dscp46/862``."""
        port = f"/{self.dst_port}" if self.dst_port is not None else ""
        return f"{self.protocol}/v{self.ip_version}/{self.size}/dscp{self.dscp}{port}"


@dataclass(frozen=True, slots=True)
class Hop:
    """One traceroute hop: the TTL sent, the replying address (None: no reply), its RTT."""

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
    copy counts, RFC 7679 §3.4). ``hops`` is set by traceroute only.
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
        _check_consistency(self)

    @property
    def path_id(self) -> str:
        """Directed path identifier ``src_site/src_carrier>dst_site/dst_carrier``."""
        return path_id(self.src_site, self.src_carrier, self.dst_site, self.dst_carrier)

    @property
    def lost(self) -> bool:
        return self.status is Status.LOST

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the wire and spool form)."""
        d = asdict(self)
        d["hops"] = [[h.ttl, h.addr, h.rtt_ns] for h in self.hops]
        return d


def path_id(src_site: str, src_carrier: str, dst_site: str, dst_carrier: str) -> str:
    """The directed path key used by store, analyzer and dashboard."""
    return f"{src_site}/{src_carrier}>{dst_site}/{dst_carrier}"


def _check_consistency(r: Result) -> None:
    if r.status is Status.RECEIVED and r.rtt_ns is None and r.fwd_ns is None:
        raise RecordError("field 'rtt_ns': a received result needs rtt_ns or fwd_ns")
    if r.status is Status.LOST and (r.rtt_ns is not None or r.fwd_ns is not None):
        raise RecordError("field 'rtt_ns': a lost result has no delay")
    if r.status is Status.ERROR and r.error is None:
        raise RecordError("field 'error': an error result must name its ErrorKind")
    if r.rtt_ns is not None and r.rtt_ns < 0:
        raise RecordError(f"field 'rtt_ns': negative value {r.rtt_ns}")
    if r.tmax_ns <= 0:
        raise RecordError(f"field 'tmax_ns': must be positive, got {r.tmax_ns}")
    if r.seq < 0:
        raise RecordError(f"field 'seq': must be >= 0, got {r.seq}")


_REQUIRED_STR = ("probe_id", "src_site", "src_carrier", "dst_site", "dst_carrier",
                 "src_addr", "dst_addr")
_OPTIONAL_INT = ("rtt_ns", "fwd_ns", "bwd_ns", "clock_error_ns", "reply_ttl")


def from_dict(d: Mapping[str, Any]) -> Result:
    """Parse a record of any known schema version; raise :class:`RecordError` naming the field.

    A well-formed v1 record from JSON takes the fast path. It returns None for anything it is
    not sure of, so every error is still worded by the checked path below, exactly as before; a
    consistency error (a lost result with a delay) has the same text on both paths, as both end
    in the same check.
    """
    result = _from_v1_fast(d) if type(d) is dict else None
    if result is not None:
        return result
    if not isinstance(d, Mapping):
        raise RecordError(f"result: expected an object, got {type(d).__name__}")
    version = d.get("v", SCHEMA_VERSION)
    if version == 1:
        return _from_v1(d)
    raise RecordError(f"field 'v': unknown schema version {version!r}")


def _from_v1(d: Mapping[str, Any]) -> Result:
    kw: dict[str, Any] = {}
    for name in _REQUIRED_STR:
        kw[name] = _str(d, name)
    kw["method"] = _enum(d, "method", Method)
    kw["status"] = _enum(d, "status", Status)
    kw["ts_source"] = _enum(d, "ts_source", TimestampSource)
    kw["type_p"] = _type_p(d.get("type_p"))
    kw["seq"] = _int(d, "seq")
    kw["sent_at_ns"] = _int(d, "sent_at_ns")
    kw["tmax_ns"] = _int(d, "tmax_ns")
    for name in _OPTIONAL_INT:
        kw[name] = _opt_int(d, name)
    for name in ("src_synced", "dst_synced"):
        value = d.get(name)
        if value is not None and not isinstance(value, bool):
            raise RecordError(f"field {name!r}: expected true/false/null, got {value!r}")
        kw[name] = value
    kw["error"] = _enum(d, "error", ErrorKind) if d.get("error") is not None else None
    detail = d.get("error_detail")
    kw["error_detail"] = None if detail is None else str(detail)
    kw["dup"] = _int(d, "dup") if "dup" in d else 0
    kw["session"] = str(d.get("session", ""))
    kw["hops"] = _hops(d.get("hops", []))
    return Result(**kw)


def _str(d: Mapping[str, Any], name: str) -> str:
    value = d.get(name)
    if not isinstance(value, str) or not value:
        raise RecordError(f"field {name!r}: expected a non-empty string, got {value!r}")
    return value


def _int(d: Mapping[str, Any], name: str) -> int:
    value = d.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"field {name!r}: expected an integer, got {value!r}")
    return value


def _opt_int(d: Mapping[str, Any], name: str) -> int | None:
    return None if d.get(name) is None else _int(d, name)


def _enum(d: Mapping[str, Any], name: str, kind: type[_E]) -> _E:
    value = d.get(name)
    try:
        return kind(str(value))
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise RecordError(f"field {name!r}: {value!r} is not one of {allowed}") from None


def _type_p(value: Any) -> TypeP:
    if not isinstance(value, Mapping):
        raise RecordError(f"field 'type_p': expected an object, got {value!r}")
    protocol = _str(value, "protocol")
    if protocol not in ("icmp", "udp", "tcp"):
        raise RecordError(f"field 'type_p.protocol': {protocol!r} is not icmp, udp or tcp")
    ip_version = _int(value, "ip_version")
    if ip_version not in (4, 6):
        raise RecordError(f"field 'type_p.ip_version': {ip_version!r} is not 4 or 6")
    size = _int(value, "size")
    dscp = _int(value, "dscp") if "dscp" in value else 0
    if not 0 <= dscp < 64:
        raise RecordError(f"field 'type_p.dscp': {dscp} is not in 0..63")
    port = _opt_int(value, "dst_port")
    return TypeP(protocol, ip_version, size, dscp, port)


def _hops(value: Any) -> tuple[Hop, ...]:
    if not isinstance(value, list):
        raise RecordError(f"field 'hops': expected a list, got {value!r}")
    hops = []
    for i, item in enumerate(value):
        if not isinstance(item, list | tuple) or len(item) != 3:
            raise RecordError(f"field 'hops[{i}]': expected [ttl, addr, rtt_ns], got {item!r}")
        ttl, addr, rtt = item
        if not isinstance(ttl, int) or (addr is not None and not isinstance(addr, str)):
            raise RecordError(f"field 'hops[{i}]': bad hop {item!r}")
        if rtt is not None and not isinstance(rtt, int):
            raise RecordError(f"field 'hops[{i}]': bad rtt {rtt!r}")
        hops.append(Hop(ttl, addr, rtt))
    return tuple(hops)


# The fast path. A collector decodes batches of 1,000 records; the checked path spends most of
# its time in one helper call per field and in the frozen dataclass's ``__init__``, which sets
# each of the 27 fields through ``object.__setattr__``. The fast path instead fetches all fields
# in one call, checks their exact JSON types against signatures already seen good, finds enum
# members in dicts and fills the slots by plain stores (see _UnfrozenResult).
_STR: frozenset[type] = frozenset({str})
_INT: frozenset[type] = frozenset({int})
_INT_OR_NONE: frozenset[type] = frozenset({int, type(None)})
_BOOL_OR_NONE: frozenset[type] = frozenset({bool, type(None)})
_STR_OR_NONE: frozenset[type] = frozenset({str, type(None)})
# Exact types (``type(x) is int``) rule out what the checked path rejects (``true`` as an
# integer) and also what it converts (``str(value)``); the latter is left to the checked path.
# Every field of :class:`Result` but ``v``, in the order of the unpacking in _from_v1_fast.
_FAST_TYPES: dict[str, frozenset[type]] = {
    "probe_id": _STR, "method": _STR, "src_site": _STR, "src_carrier": _STR,
    "dst_site": _STR, "dst_carrier": _STR, "src_addr": _STR, "dst_addr": _STR,
    "type_p": frozenset({dict}), "seq": _INT, "sent_at_ns": _INT, "status": _STR,
    "tmax_ns": _INT, "ts_source": _STR, "rtt_ns": _INT_OR_NONE, "fwd_ns": _INT_OR_NONE,
    "bwd_ns": _INT_OR_NONE, "clock_error_ns": _INT_OR_NONE, "src_synced": _BOOL_OR_NONE,
    "dst_synced": _BOOL_OR_NONE, "error": _STR_OR_NONE, "error_detail": _STR_OR_NONE,
    "dup": _INT, "reply_ttl": _INT_OR_NONE, "session": _STR, "hops": frozenset({list}),
}
_fetch_fields = operator.itemgetter(*_FAST_TYPES)
_GOOD_SIGNATURES: set[tuple[type, ...]] = set()  # at most 2**9: nine fields allow two types
_METHODS = {m.value: m for m in Method}
_STATUSES = {m.value: m for m in Status}
_TS_SOURCES = {m.value: m for m in TimestampSource}
_ERRORS = {m.value: m for m in ErrorKind}
# A batch carries only a few distinct Type-Ps: share one frozen TypeP per distinct value.
_TYPE_PS: dict[tuple[Any, ...], TypeP] = {}
_TYPE_PS_MAX = 256  # a probe sending ever new sizes must not grow the cache without bound
_fetch_type_p = operator.itemgetter("protocol", "ip_version", "size", "dscp", "dst_port")
_TYPE_P_SIGNATURES = {(str, int, int, int, type(None)), (str, int, int, int, int)}


def _from_v1_fast(d: dict[str, Any]) -> Result | None:
    """Build the record if it is v1 and every field is present with its exact JSON type and a
    known value; otherwise None, and the checked path decides (it applies defaults and words
    errors)."""
    if d.get("v", SCHEMA_VERSION) != 1:
        return None
    try:
        values = _fetch_fields(d)
    except KeyError:
        return None
    signature = tuple(map(type, values))
    if signature not in _GOOD_SIGNATURES and not _learn_signature(signature):
        return None
    r: Any = object.__new__(_UnfrozenResult)
    (r.probe_id, r.method, r.src_site, r.src_carrier, r.dst_site, r.dst_carrier, r.src_addr,
     r.dst_addr, r.type_p, r.seq, r.sent_at_ns, r.status, r.tmax_ns, r.ts_source, r.rtt_ns,
     r.fwd_ns, r.bwd_ns, r.clock_error_ns, r.src_synced, r.dst_synced, r.error,
     r.error_detail, r.dup, r.reply_ttl, r.session, r.hops) = values
    if not _convert_json_values(r):
        return None
    r.v = SCHEMA_VERSION
    r.__class__ = Result
    _check_consistency(r)
    return r  # type: ignore[no-any-return]


def _convert_json_values(r: Any) -> bool:
    """Replace the JSON values that stand for enums, the Type-P and hops by their objects, in
    place; False if a value is unknown or a required string is empty."""
    if not (r.probe_id and r.src_site and r.src_carrier and r.dst_site and r.dst_carrier
            and r.src_addr and r.dst_addr):
        return False
    r.method, r.status, r.ts_source = (_METHODS.get(r.method), _STATUSES.get(r.status),
                                       _TS_SOURCES.get(r.ts_source))
    if r.error is not None:
        r.error = _ERRORS.get(r.error, False)  # False: unknown, None stays "no error"
    r.type_p = _type_p_fast(r.type_p)
    r.hops = _hops_or_none(r.hops) if r.hops else ()
    return not (r.method is None or r.status is None or r.ts_source is None or r.error is False
                or r.type_p is None or r.hops is None)


def _learn_signature(signature: tuple[type, ...]) -> bool:
    """Whether each field has an allowed exact type; a good signature is remembered, so the
    records of a batch, which share a handful of signatures, cost one set lookup each."""
    if all(kind in allowed for kind, allowed in zip(signature, _FAST_TYPES.values(),
                                                    strict=True)):
        _GOOD_SIGNATURES.add(signature)
        return True
    return False


class _UnfrozenResult:
    """:class:`Result`'s slot layout without its frozen ``__setattr__``.

    The frozen ``__init__`` sets each of the 27 fields through ``object.__setattr__``; plain
    attribute stores on this class cost a fraction of that. Once filled, the object becomes a
    Result by assigning ``__class__``, which Python allows because the layouts are identical.
    """

    __slots__ = Result.__slots__


def _type_p_fast(value: dict[str, Any]) -> TypeP | None:
    """The shared TypeP for a ``type_p`` object with all fields of exact types, else None.

    Types are checked before the lookup, so ``4.0`` or ``true`` never hit the entry of ``4``
    or ``1``; a new entry is made and checked by :func:`_type_p`.
    """
    try:
        key = _fetch_type_p(value)
    except KeyError:
        return None
    if tuple(map(type, key)) not in _TYPE_P_SIGNATURES:
        return None
    type_p = _TYPE_PS.get(key)
    if type_p is None:
        try:
            type_p = _type_p(value)
        except RecordError:
            return None
        if len(_TYPE_PS) >= _TYPE_PS_MAX:
            _TYPE_PS.clear()
        _TYPE_PS[key] = type_p
    return type_p


def _hops_or_none(value: list[Any]) -> tuple[Hop, ...] | None:
    """Traceroute hops through :func:`_hops`; None where it would raise."""
    try:
        return _hops(value)
    except RecordError:
        return None
