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
    """Parse a record of any known schema version; raise :class:`RecordError` naming the field."""
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
