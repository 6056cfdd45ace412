"""What a valid result is: its code tables, its limits and its value rules, defined once.

Two engines apply these rules and nothing else: :class:`ixmeter.core.record.Result` construction on
scalars (probes, importers, the spool, store reads) and the collector's body decoder on whole
numpy columns (``analyzer.wire_columns``). A rule is data (:class:`Bound`) or an expression
built from comparisons, ``&``, ``|`` and ``+`` only (:func:`outside`, :func:`result_faults`),
which mean the same on Python ints and bools as on numpy arrays; so the decoder's verdict on a
column is, value by value, the record's. numpy-free: the probe imports this module.

Limits, each a physical or storage bound (a value outside cannot be a measurement, or would
break storage or a sum):

- integers are exact: a boolean is not an integer, a float is not an integer; every integer
  field has a range below inside ``-(2**63-1) .. 2**63-1`` (``-2**63`` is the stored null);
- ``tmax_ns`` 1 ns .. 3,600 s; ``rtt_ns``, ``fwd_ns``, ``bwd_ns`` and a hop's RTT 0 ..
  ``tmax_ns`` of the same result: a reply after Tmax is lost by definition (RFC 7680 §2.4;
  one-way delay RFC 7679 §3.4-3.5, round trip RFC 2681 §2.4);
- so every per-batch sum of delays fits int64: :data:`MAX_RESULTS` x 3,600 s = 3.6e17 ns <
  2**63 (checked at import);
- ``clock_error_ns`` 0 .. 86,400 s (RFC 7679 §3.7.3 error bound); ``sent_at_ns`` in
  [2000-01-01, 2100-01-01) UTC; ``seq`` 0 .. 2**63-1; ``dup`` 0 .. 2**31-1; ``reply_ttl``
  0 .. 255, a hop's TTL 1 .. 255 (IPv4 TTL, IPv6 Hop Limit: one octet);
- Type-P (RFC 2330 §13, RFC 7679 §3.8.1): protocol icmp/udp/tcp, IP version 4/6, size
  0 .. 65,535 octets, DSCP 0 .. 63, destination port 0 .. 65,535 or none;
- strings are valid Unicode without control characters or lone surrogates (NUL breaks
  PostgreSQL text, a surrogate breaks UTF-8): identity strings 1 .. 128 characters (the
  session may be empty), ``error_detail`` at most 1,024, a hop address 1 .. 64;
- codes index :data:`STATUS_CODES`, :data:`TS_SOURCE_CODES`, :data:`ERROR_CODES` (append only);
- per result: a received result has ``rtt_ns`` or ``fwd_ns``, a lost one neither (RFC 7680
  §2.4), an error names its code (RFC 7680 §2.5: an error is not a sample).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 1  # the result record's; wire bodies carry it per result (column ``v``)


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


# The smallest packet ixmeter's probe sends per method (octets of IP payload, the Type-P size)
# and why: the inventory refuses a smaller spec, and each codec asserts its layout is this size.
SMALLEST_PACKET: dict[Method, tuple[int, str]] = {
    Method.ICMP: (24, "ICMP message: 8-octet echo header (RFC 792), ixmeter's 16-octet probe id"),
    Method.STAMP: (44, "UDP payload: the unauthenticated STAMP base packet, RFC 8762 §4.2.1"),
    Method.TRACEROUTE: (24, "an ICMP-flow trace probe is an echo like the ICMP method's"),
}

class ErrorKind(enum.StrEnum):
    """Why a record is an error rather than a sample."""

    SEND_ERROR = "send_error"
    MALFORMED_REPLY = "malformed_reply"
    CLOCK_STEP = "clock_step"  # wall and monotonic intervals disagree (RFC 2681 §2.5)
    CLOCK_FAULT = "clock_fault"  # a one-way delay <= 0 or above T4 - T1 (RFC 7679 §3.5)
    LOCAL_DROP = "local_drop"  # queue full, late scheduling: the probe never left
    OTHER = "other"


class TimestampSource(enum.StrEnum):
    """Where the send/receive times came from (RFC 7679 §3.7.2 host time)."""

    HARDWARE = "hardware"
    KERNEL = "kernel"
    USER = "user"
    IMPORTED = "imported"


# Code tables of the wire body and the stored columns: a code is the member's position.
STATUS_CODES: tuple[str, ...] = tuple(m.value for m in Status)
TS_SOURCE_CODES: tuple[str, ...] = tuple(m.value for m in TimestampSource)
ERROR_CODES: tuple[str, ...] = tuple(m.value for m in ErrorKind)
METHOD_VALUES = frozenset(m.value for m in Method)
RECEIVED, LOST, ERROR = (STATUS_CODES.index(m.value) for m in
                         (Status.RECEIVED, Status.LOST, Status.ERROR))

NS_PER_S = 10**9
INT64_MAX = 2**63 - 1
INT64_MIN = -INT64_MAX  # -2**63 itself is the stored columns' null
MAX_RESULTS = 100_000  # per batch (a probe's batch_size is at most this)
TMAX_MAX_NS = 3_600 * NS_PER_S
CLOCK_ERROR_MAX_NS = 86_400 * NS_PER_S
SENT_AT_MIN_NS = 946_684_800 * NS_PER_S  # 2000-01-01T00:00:00Z
SENT_AT_END_NS = 4_102_444_800 * NS_PER_S  # 2100-01-01T00:00:00Z, excluded
DUP_MAX = 2**31 - 1
OCTET_MAX = 255
PORT_MAX = 65_535
IDENT_MAX_CHARS = 128
DETAIL_MAX_CHARS = 1_024
HOP_ADDR_MAX_CHARS = 64
PROTOCOLS = ("icmp", "udp", "tcp")
IP_VERSIONS = (4, 6)
if MAX_RESULTS * TMAX_MAX_NS >= INT64_MAX:
    raise ImportError("a batch's sum of delays must fit int64")


@dataclass(frozen=True, slots=True)
class Bound:
    """Every present value of ``column`` lies in ``low .. high``; ``high`` is a number or the
    name of the column whose value (of the same result) bounds it. ``why`` names the
    definition."""

    column: str
    low: int
    high: int | str
    why: str

    def message(self, value: int, high: int) -> str:
        """The refusal of ``value`` (``high``: the bound's value for its result)."""
        limit = f"{self.high} ({high})" if isinstance(self.high, str) else f"{high}"
        return f"{value} is not within {self.low}..{limit}: {self.why}"


def _codes(table: tuple[str, ...]) -> str:
    return "a code (" + ", ".join(f"{i} {s}" for i, s in enumerate(table)) + ")"


# The per-result integer rules in the order they are checked (a bound naming another column
# comes after that column's own rule). Column names are Result's fields and the wire's columns.
BOUNDS: tuple[Bound, ...] = (
    Bound("seq", 0, INT64_MAX, "a sequence number is >= 0"),
    Bound("sent_at_ns", SENT_AT_MIN_NS, SENT_AT_END_NS - 1,
          "a UTC send time in [2000-01-01, 2100-01-01)"),
    Bound("tmax_ns", 1, TMAX_MAX_NS, "Tmax is positive and at most 3,600 s (RFC 7680 §2.4)"),
    Bound("rtt_ns", 0, "tmax_ns",
          "a reply after Tmax is lost by definition (RFC 7680 §2.4, RFC 2681 §2.4)"),
    Bound("fwd_ns", 0, "tmax_ns", "a one-way delay within Tmax (RFC 7679 §3.4-3.5)"),
    Bound("bwd_ns", 0, "tmax_ns", "a one-way delay within Tmax (RFC 7679 §3.4-3.5)"),
    Bound("clock_error_ns", 0, CLOCK_ERROR_MAX_NS,
          "a clock error bound of at most a day (RFC 7679 §3.7.3)"),
    Bound("dup", 0, DUP_MAX, "a count of extra copies"),
    Bound("reply_ttl", 0, OCTET_MAX, "an IP TTL or Hop Limit is one octet"),
    Bound("v", SCHEMA_VERSION, SCHEMA_VERSION, "the record schema version"),
    Bound("status", 0, len(STATUS_CODES) - 1, _codes(STATUS_CODES)),
    Bound("ts_source", 0, len(TS_SOURCE_CODES) - 1, _codes(TS_SOURCE_CODES)),
    Bound("error", 0, len(ERROR_CODES) - 1, _codes(ERROR_CODES)),
)
# A traceroute hop's TTL and RTT (its RTT bounded by its result's Tmax).
HOP_BOUNDS: tuple[Bound, ...] = (
    Bound("ttl", 1, OCTET_MAX, "a TTL sent is 1..255"),
    Bound("rtt_ns", 0, "tmax_ns", "a hop's reply after Tmax is lost (RFC 7680 §2.4)"),
)
CODE_COLUMNS = frozenset({"status", "ts_source", "error"})  # enums in a Result


def outside(value: Any, low: Any, high: Any) -> Any:
    """Whether ``value`` is outside ``low .. high``: a bool for scalars, a bool array for
    arrays (the caller leaves nulls out)."""
    return (value < low) | (value > high)


NEEDS_DELAY = "a received result needs rtt_ns or fwd_ns (RFC 7680 §2.4)"
NO_DELAY = "a lost result has no delay (RFC 7680 §2.4)"
NEEDS_ERROR = "an error result must name its error code (RFC 7680 §2.5: not a sample)"


def result_faults(status: Any, has_rtt: Any, has_fwd: Any, has_error: Any
                  ) -> tuple[tuple[str, str, Any], ...]:
    """The per-result rules in the order checked, as (field named, reason, where broken):
    ``status`` a code, the others whether the value is present; scalars or arrays alike
    (``+`` of two bools is a count in Python and *or* on numpy bool arrays)."""
    delay = has_rtt + has_fwd
    return (("rtt_ns", NEEDS_DELAY, (status == RECEIVED) & (delay == 0)),
            ("rtt_ns", NO_DELAY, (status == LOST) & (delay > 0)),
            ("error", NEEDS_ERROR, (status == ERROR) & (has_error == 0)))


# Control characters (C0, DEL, C1) and surrogates: none may be in any string of a result.
_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def text_problem(values: Sequence[Any], max_chars: int, *, empty_ok: bool = False
                 ) -> tuple[int, str] | None:
    """The first of ``values`` that is not an acceptable string, as (its index, the reason);
    None if all are. Checked over all at once, then located."""
    if (set(map(type, values)) <= {str} and (empty_ok or all(values))
            and max(map(len, values), default=0) <= max_chars
            and not _BAD_CHAR.search("".join(values))):
        return None
    for i, value in enumerate(values):
        if type(value) is not str:
            return i, f"expected a string, got {value!r}"
        if not value and not empty_ok:
            return i, "expected a non-empty string"
        if len(value) > max_chars:
            return i, f"{len(value)} characters, at most {max_chars}"
        bad = _BAD_CHAR.search(value)
        if bad:
            return i, (f"U+{ord(bad.group()):04X} at {bad.start()}: no control character "
                       "or lone surrogate")
    raise AssertionError("unreachable")


def detail_text(text: str) -> str:
    """A probe's own message (an exception's text, say) as a valid ``error_detail``: each
    control character or lone surrogate written as its escape (``\\n``, ``\\x00``,
    ``\\ud800``), cut to :data:`DETAIL_MAX_CHARS`. For text the probe makes, never for a
    received or imported value (that is refused as it is)."""
    clean = _BAD_CHAR.sub(lambda m: m.group().encode("unicode_escape",
                                                     "backslashreplace").decode(), text)
    return clean[:DETAIL_MAX_CHARS]


def type_p_problem(protocol: Any, ip_version: Any, size: Any, dscp: Any, dst_port: Any
                   ) -> tuple[str, str] | None:
    """The first Type-P field that breaks its rule, as (field, reason); None if none does
    (RFC 2330 §13, RFC 7679 §3.8.1)."""
    if type(protocol) is not str or protocol not in PROTOCOLS:
        return "protocol", f"{protocol!r} is not one of {', '.join(PROTOCOLS)}"
    if type(ip_version) is not int or ip_version not in IP_VERSIONS:
        return "ip_version", f"{ip_version!r} is not 4 or 6"
    for name, value, high in (("size", size, PORT_MAX), ("dscp", dscp, 63),
                              ("dst_port", dst_port, PORT_MAX)):
        if name == "dst_port" and value is None:
            continue
        if type(value) is not int:
            return name, f"expected an integer, got {value!r}"
        if outside(value, 0, high):
            return name, f"{value} is not within 0..{high}"
    return None
