"""Probe-to-collector messages: the batch body and its HMAC-SHA256 signature.

One body format, canonical JSON (sorted keys, no spaces, UTF-8), its schema the msgspec
Structs below (:class:`WireBody`) and its value rules :mod:`ixmeter.core.rules`. The probe encodes
(:func:`encode_columns`), the collector decodes (``analyzer.wire_columns.decode_body``:
:func:`parse_body`, then the rules on whole columns). The probe signs ``METHOD \\n PATH \\n
timestamp \\n nonce \\n sha256(body)`` with its own key (HMAC-SHA256, RFC 2104 / FIPS 198-1) and
sends it in five headers, the body's digest among them, so the collector checks the signature
before it reads the body (see :func:`verify`). The collector rejects an unknown probe, a bad
signature, a timestamp outside the allowed skew or a nonce it has seen. Pure functions: no
sockets, no clock (callers pass ``now``).

The body is columnar: one object per *stream* (what many results share) holding the
per-result fields column by column::

    {"batch_id": "<id>", "probe_id": "<probe>", "streams": [<stream>, ...], "v": 2}

``batch_id`` and ``probe_id`` are identity strings, and the body has no other keys; every
result of the batch is the probe's (no stream names a probe). A stream object has these keys,
then the columns below, and no others:

========================  =====================================================================
stream key                value
========================  =====================================================================
``method``                ``"icmp"``, ``"stamp"`` or ``"traceroute"``
``src_site``,             identity strings (the directed path and its two addresses)
``src_carrier``,
``dst_site``,
``dst_carrier``,
``src_addr``,
``dst_addr``
``type_p``                ``{"protocol": "icmp"|"udp"|"tcp", "ip_version": 4|6, "size": 0..65535,
                          "dscp": 0..63 (default 0), "dst_port": 0..65535 or null (default null)}``
``session``               a string, may be empty (default ``""``)
``n``                     the number of results in the stream, 1 .. 100,000
========================  =====================================================================

A dense *column* is either a JSON list of exactly ``n`` values (value ``k`` belongs to the
stream's result ``k``) or one value that stands for all ``n`` (``"tmax_ns": 3000000000``):

========================  ================================================  ==================
column                    each value                                        if absent
========================  ================================================  ==================
``idx``                   the result's position in the batch, ``0..N-1``    required
                          (``N`` = the sum of all ``n``); increasing within
                          a stream, every position in exactly one stream.
                          One integer ``i`` stands for ``i, i+1, ..., i+n-1``
``seq``                   0 .. 2**63-1                                      required
``sent_at_ns``            wall-clock UTC send time, 2000 .. 2100            required
``tmax_ns``               1 ns .. 3,600 s                                   required
``status``                code: 0 received, 1 lost, 2 error                 required
``ts_source``             code: 0 hardware, 1 kernel, 2 user, 3 imported    required
``rtt_ns``, ``fwd_ns``,   0 .. ``tmax_ns``, or null                         null
``bwd_ns``
``clock_error_ns``        0 .. 86,400 s, or null                            null
``reply_ttl``             0 .. 255, or null                                 null
``src_synced``,           ``true``, ``false`` or null                       null
``dst_synced``
``error``                 null or a code: 0 send_error, 1 malformed_reply,  null
                          2 clock_step, 3 clock_fault, 4 local_drop, 5 other
``dup``                   extra copies received, 0 .. 2**31-1               0
``v``                     the record's schema version: 1                    1
========================  ================================================  ==================

An integer is a JSON number without fraction or exponent (``true`` and ``1.0`` are not), in
``-(2**63-1) .. 2**63-1`` and then in its column's range. Two *sparse* columns list only the
results that have a value, as ``[k, value]`` pairs with ``k`` (the result's position in the
stream) increasing: ``error_detail`` ``[[k, "text"], ...]`` (at most 1,024 characters) and
``hops`` ``[[k, [[ttl 1..255, addr (1..64 characters) or null, rtt_ns 0..tmax_ns or null],
...]], ...]`` (a non-empty hop list; traceroute); absent or ``[]`` means none. Identity strings
have 1 .. 128 characters; no string has a control character (NUL, C0, DEL, C1) or a lone
surrogate.

Per result: a received result has ``rtt_ns`` or ``fwd_ns``, a lost one has neither, an error
names its ``error`` code. Two streams of one batch must differ in some stream key; they may
come in any order (the encoder writes them in the order of their first result). A body holds
at most :data:`MAX_RESULTS` (100,000) results, and no more results than it has bytes (a body
of single values claiming thousands of results would make the decoder expand them; a probe's
bodies take 20 bytes a result or more). ``status``, ``ts_source`` and ``error`` codes index
:data:`STATUS_CODES`, :data:`TS_SOURCE_CODES` and :data:`ERROR_CODES`; new codes are only
ever appended. Example: two ICMP results of one stream, the second lost (wrapped here; the
body has no line breaks)::

    {"batch_id":"b7","probe_id":"p1","streams":[{"bwd_ns":null,"clock_error_ns":null,
    "dst_addr":"198.18.65.10","dst_carrier":"CM","dst_site":"b","dst_synced":null,"dup":0,
    "error":null,"error_detail":[],"fwd_ns":null,"hops":[],"idx":0,"method":"icmp","n":2,
    "reply_ttl":[60,null],"rtt_ns":[1200000,null],"sent_at_ns":[1790000000000000000,
    1790000000020000000],"seq":[7,8],"session":"","src_addr":"198.18.1.10","src_carrier":"CT",
    "src_site":"a","src_synced":null,"status":[0,1],"tmax_ns":3000000000,"ts_source":1,
    "type_p":{"dscp":0,"dst_port":null,"ip_version":4,"protocol":"icmp","size":64},"v":1}],
    "v":2}

An invalid body is refused with a :class:`RecordError` whose message starts with ``field
'<where>': `` naming the exact JSON location, e.g. ``field 'streams[2].rtt_ns[17]': ...``
(``[k]``, the result's position in the stream, is left out where the column was sent as one
value, except for the per-result rules), or with ``body: `` for a body that is not JSON or not
an object. Checked in this order, the first failure reported: JSON syntax and types (msgspec,
document order); the envelope's strings; counts; the streams' identities; the column lengths;
the ranges of :data:`ixmeter.core.rules.BOUNDS` in their order; ``idx``; the per-result rules; the
sparse columns.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from ixmeter.core.errors import RecordError
from ixmeter.core.record import Result, TypeP
from ixmeter.core.rules import (
    ERROR_CODES,
    INT64_MAX,
    INT64_MIN,
    MAX_RESULTS,
    SCHEMA_VERSION,
    STATUS_CODES,
    TS_SOURCE_CODES,
)

__all__ = ["ERROR_CODES", "MAX_RESULTS", "STATUS_CODES", "TS_SOURCE_CODES", "AuthError",
           "Batch", "WireBody", "WireStream", "WireTypeP", "encode_columns", "parse_body",
           "sign", "signing_string", "verify"]

WIRE_VERSION: Literal[2] = 2
HEADER_PROBE = "X-Ixmeter-Probe"
HEADER_TIMESTAMP = "X-Ixmeter-Timestamp"
HEADER_NONCE = "X-Ixmeter-Nonce"
HEADER_SIGNATURE = "X-Ixmeter-Signature"
HEADER_DIGEST = "X-Ixmeter-Content-SHA256"
MAX_SKEW_S = 300
MIN_KEY_BYTES = 16  # an HMAC key (probe uploads, STAMP) has at least this many bytes


@dataclass(frozen=True, slots=True)
class Batch:
    """A probe's batch of results; (probe_id, batch_id) identifies it for exactly-once ingest."""

    probe_id: str
    batch_id: str
    results: tuple[Result, ...]


# -- the schema: JSON types and structure (value rules: ixmeter.core.rules) -----------------------
# Fields in code-point order, so that msgspec, which writes them in this order, writes
# canonical JSON (a body starts with ``{"batch_id":``; the collector's duplicate check reads it).
Int = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
Ints = Int | list[Int]
NullInts = Int | None | list[Int | None]
Flags = bool | None | list[bool | None]
HopValue = tuple[Int, str | None, Int | None]
HopList = Annotated[list[HopValue], msgspec.Meta(min_length=1)]


class WireTypeP(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A stream's Type-P (RFC 2330 §13)."""

    dscp: Int = 0
    dst_port: Int | None = None
    ip_version: Int
    protocol: str
    size: Int


class WireStream(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One stream: its identity, ``n`` and its columns (see the module docstring)."""

    bwd_ns: NullInts = None
    clock_error_ns: NullInts = None
    dst_addr: str
    dst_carrier: str
    dst_site: str
    dst_synced: Flags = None
    dup: Ints = 0
    error: NullInts = None
    error_detail: list[tuple[Int, str]] = []
    fwd_ns: NullInts = None
    hops: list[tuple[Int, HopList]] = []
    idx: Ints
    method: str
    n: Annotated[int, msgspec.Meta(ge=1, le=MAX_RESULTS)]
    reply_ttl: NullInts = None
    rtt_ns: NullInts = None
    sent_at_ns: Ints
    seq: Ints
    session: str = ""
    src_addr: str
    src_carrier: str
    src_site: str
    src_synced: Flags = None
    status: Ints
    tmax_ns: Ints
    ts_source: Ints
    type_p: WireTypeP
    v: Ints = SCHEMA_VERSION


class WireBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A batch body."""

    batch_id: str
    probe_id: str
    streams: list[WireStream]
    v: Literal[2]


# The dense columns, in analyzer.columns' block order (INT_COLUMNS then CODE_COLUMNS).
DENSE_COLUMNS = ("idx", "seq", "sent_at_ns", "tmax_ns", "rtt_ns", "fwd_ns", "bwd_ns",
                 "clock_error_ns", "dup", "reply_ttl", "v", "status", "ts_source", "error",
                 "src_synced", "dst_synced")
FLAG_COLUMNS = ("src_synced", "dst_synced")
NULLABLE_COLUMNS = frozenset({"rtt_ns", "fwd_ns", "bwd_ns", "clock_error_ns", "reply_ttl",
                              "error", "src_synced", "dst_synced"})
IDENT_STRINGS = ("src_site", "src_carrier", "dst_site", "dst_carrier", "src_addr", "dst_addr")
_DECODER = msgspec.json.Decoder(WireBody)
_ENCODER = msgspec.json.Encoder()


def parse_body(body: bytes) -> WireBody:
    """The body's JSON read into :class:`WireBody` (syntax, types, keys, integers within
    int64, ``n``); raises :class:`RecordError` ``field '<path>': ...`` or ``body: ...``. The
    value rules are the decoder's (``analyzer.wire_columns``)."""
    try:
        return _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise RecordError(_located(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise RecordError(f"body: not valid JSON ({exc})") from None


_AT = re.compile(r"(.*?)(?: - at `\$\.?(.*)`)?", re.S)
_KEY = re.compile(r"Object (missing required|contains unknown) field `(.*)`", re.S)


def _located(message: str) -> str:
    """msgspec's ``Expected `int`, got `bool` - at `$.streams[0].seq[1]``` as ``field
    'streams[0].seq[1]': expected `int`, got `bool```; a missing or unknown key is located
    at the key."""
    m = _AT.fullmatch(message)
    reason, path = (m.group(1), m.group(2) or "") if m else (message, "")
    key = _KEY.fullmatch(reason)
    if key is not None:
        name = key.group(2)
        what = "missing" if key.group(1) == "missing required" else "unknown key"
        if name.isidentifier():
            path, reason = f"{path}.{name}" if path else name, what
        else:
            reason = f"{what} {name!r}"
    reason = reason[:1].lower() + reason[1:]
    return f"field {path!r}: {reason}" if path else f"body: {reason}"


def hex_key(text: str) -> bytes:
    """A key as the key files hold it (hex, at least :data:`MIN_KEY_BYTES` bytes); raises
    ValueError whose text says what is wrong ("is not hex", "has 8 bytes, ...")."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError("is not hex") from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"has {len(key)} bytes, need at least {MIN_KEY_BYTES}")
    return key


def signing_string(method: str, path: str, timestamp: str, nonce: str, digest: str) -> bytes:
    """What the HMAC covers: request line parts, timestamp, nonce and the body's SHA-256 (hex)."""
    return "\n".join((method.upper(), path, timestamp, nonce, digest)).encode()


def body_digest(body: bytes) -> str:
    """The body's SHA-256 (FIPS 180-4), lower-case hex: the ``X-Ixmeter-Content-SHA256`` value."""
    return hashlib.sha256(body).hexdigest()


def sign(key: bytes, probe_id: str, method: str, path: str, body: bytes, now: float,
         nonce: str | None = None) -> dict[str, str]:
    """Headers that authenticate ``body`` as coming from ``probe_id`` at time ``now``."""
    timestamp = f"{now:.3f}"
    nonce = nonce or secrets.token_hex(16)
    digest = body_digest(body)
    mac = hmac.new(key, signing_string(method, path, timestamp, nonce, digest), hashlib.sha256)
    return {HEADER_PROBE: probe_id, HEADER_TIMESTAMP: timestamp, HEADER_NONCE: nonce,
            HEADER_DIGEST: digest, HEADER_SIGNATURE: mac.hexdigest()}


class AuthError(RecordError):
    """A request that fails authentication; ``reason`` is a short machine-readable cause."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class SignedHead:
    """The authentication headers of a request, each of the form :func:`signed_head` checks."""

    probe_id: str
    timestamp: str
    nonce: str
    digest: str
    signature: str


_TIMESTAMP = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")  # Unix seconds, plain decimal
_NONCE = re.compile(r"[0-9a-f]{16,64}")  # the probe sends 32 (128 random bits)
_HEX64 = re.compile(r"[0-9a-f]{64}")  # a SHA-256 digest or an HMAC-SHA256, lower-case hex
MAX_PROBE_ID = 256


def signed_head(headers: Mapping[str, str]) -> SignedHead:
    """The five authentication headers (names in any case), each checked for its form only:
    probe id of 1..256 characters, timestamp a plain decimal number of seconds (no sign,
    exponent, ``NaN`` or ``inf``), nonce 16..64 lower-case hex digits, digest and signature
    64. Raises :class:`AuthError` (``missing_headers``, ``bad_timestamp``, ``bad_nonce``,
    ``bad_signature``)."""
    lower = {k.lower(): v for k, v in headers.items()}
    values = [lower.get(h.lower(), "") for h in
              (HEADER_PROBE, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_DIGEST, HEADER_SIGNATURE)]
    if not all(values):
        missing = [h for h, v in zip((HEADER_PROBE, HEADER_TIMESTAMP, HEADER_NONCE,
                                      HEADER_DIGEST, HEADER_SIGNATURE), values, strict=True)
                   if not v]
        raise AuthError("missing_headers", f"missing header(s) {', '.join(missing)}")
    head = SignedHead(*values)
    if len(head.probe_id) > MAX_PROBE_ID:
        raise AuthError("unknown_probe", f"probe id of {len(head.probe_id)} characters "
                        f"(at most {MAX_PROBE_ID})")
    if not _TIMESTAMP.fullmatch(head.timestamp):
        raise AuthError("bad_timestamp", f"timestamp {head.timestamp[:40]!r} is not a plain "
                        "decimal number of seconds")
    if not _NONCE.fullmatch(head.nonce):
        raise AuthError("bad_nonce", "nonce is not 16 to 64 lower-case hex digits")
    if not (_HEX64.fullmatch(head.digest) and _HEX64.fullmatch(head.signature)):
        raise AuthError("bad_signature", "digest or signature is not 64 lower-case hex digits")
    return head


def verify_head(key: bytes, head: SignedHead, method: str, path: str, now: float,
                max_skew_s: float = MAX_SKEW_S) -> None:
    """Check the timestamp against ``now`` and the HMAC over the signing string with the
    *declared* digest: what can be checked before the body is read."""
    if abs(now - float(head.timestamp)) > max_skew_s:
        raise AuthError("stale_timestamp", f"timestamp {head.timestamp} is more than "
                        f"{max_skew_s:.0f} s from the collector's clock")
    text = signing_string(method, path, head.timestamp, head.nonce, head.digest)
    mac = hmac.new(key, text, hashlib.sha256)
    if not hmac.compare_digest(mac.hexdigest(), head.signature):
        raise AuthError("bad_signature", "signature does not match the request")


def verify_body(head: SignedHead, body: bytes) -> None:
    """Check that ``body`` is the one the verified head's digest names."""
    if not hmac.compare_digest(body_digest(body), head.digest):
        raise AuthError("bad_signature", "signature does not match the body")


def verify(key: bytes, headers: Mapping[str, str], method: str, path: str, body: bytes,
           now: float, max_skew_s: float = MAX_SKEW_S) -> str:
    """:func:`signed_head`, :func:`verify_head` and :func:`verify_body` in turn; returns the
    nonce (the caller checks it was not seen)."""
    head = signed_head(headers)
    verify_head(key, head, method, path, now, max_skew_s)
    verify_body(head, body)
    return head.nonce


# -- encoder -----------------------------------------------------------------------------------
_STATUS_CODE = {s: i for i, s in enumerate(STATUS_CODES)}
_TS_CODE = {s: i for i, s in enumerate(TS_SOURCE_CODES)}
_ERROR_CODE = {s: i for i, s in enumerate(ERROR_CODES)}
_PLAIN_COLUMNS = ("seq", "sent_at_ns", "tmax_ns", "rtt_ns", "fwd_ns", "bwd_ns",
                  "clock_error_ns", "dup", "reply_ttl", "v", "src_synced", "dst_synced")


def encode_columns(batch: Batch) -> bytes:
    """Canonical JSON bytes (sorted keys, no spaces) of a batch.

    Streams come in the order of their first result; a column whose values are all equal is
    written as that one value, ``idx`` of consecutive results as its first position. Raises
    :class:`RecordError` for a result of another probe (a body has no per-stream probe)."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, r in enumerate(batch.results):
        if r.probe_id != batch.probe_id:
            raise RecordError(f"results[{i}].probe_id: {r.probe_id!r} is not the batch's probe")
        groups.setdefault(_stream_key(r), []).append(i)
    streams = [_stream([batch.results[i] for i in where], where) for where in groups.values()]
    return _ENCODER.encode(WireBody(batch_id=batch.batch_id, probe_id=batch.probe_id,
                                    streams=streams, v=WIRE_VERSION))


def _stream_key(r: Result) -> tuple[Any, ...]:
    return (r.method, r.src_site, r.src_carrier, r.dst_site, r.dst_carrier, r.src_addr,
            r.dst_addr, r.type_p, r.session)


def _stream(rs: list[Result], where: list[int]) -> WireStream:
    """One stream: its keys from the first result, then its columns."""
    first, t = rs[0], rs[0].type_p
    run = where[-1] - where[0] == len(where) - 1  # increasing, so consecutive
    columns: dict[str, Any] = {name: _compact([getattr(r, name) for r in rs])
                               for name in _PLAIN_COLUMNS}
    return WireStream(
        method=first.method.value, src_site=first.src_site, src_carrier=first.src_carrier,
        dst_site=first.dst_site, dst_carrier=first.dst_carrier, src_addr=first.src_addr,
        dst_addr=first.dst_addr, session=first.session, n=len(rs), type_p=_type_p(t),
        idx=where[0] if run else where,
        status=_compact([_STATUS_CODE[r.status] for r in rs]),
        ts_source=_compact([_TS_CODE[r.ts_source] for r in rs]),
        error=_compact([None if r.error is None else _ERROR_CODE[r.error] for r in rs]),
        error_detail=[(k, r.error_detail) for k, r in enumerate(rs)
                      if r.error_detail is not None],
        hops=[(k, [(h.ttl, h.addr, h.rtt_ns) for h in r.hops])
              for k, r in enumerate(rs) if r.hops],
        **columns)


def _type_p(t: TypeP) -> WireTypeP:
    return WireTypeP(protocol=t.protocol, ip_version=t.ip_version, size=t.size, dscp=t.dscp,
                     dst_port=t.dst_port)


def _compact(values: list[Any]) -> Any:
    """One value if all are the same (same type too: ``1`` is not ``true``), else the list."""
    first = values[0]
    kind = type(first)
    if all(x == first and type(x) is kind for x in values):
        return first
    return values
