"""Probe-to-collector messages: the batch body and its HMAC-SHA256 signature.

Two body formats, both canonical JSON (sorted keys, no spaces, UTF-8); the collector accepts both,
for ever. The probe signs ``METHOD \\n PATH \\n timestamp \\n nonce \\n sha256(body)`` with its own
key (HMAC-SHA256, RFC 2104 / FIPS 198-1) and sends it in five headers, the body's digest among
them, so the collector checks the signature before it reads the body (see :func:`verify`).
Pure functions: no sockets, no clock (callers pass ``now``).

**v1** (:func:`encode_batch`): ``{"batch_id", "probe_id", "results": [record, ...], "v": 1}``,
one object per result as :meth:`ixmeter.record.Result.to_dict` writes it.

**v2** (:func:`encode_columns`), columnar: one object per *stream* (what many results share)
holding the per-result fields column by column::

    {"batch_id": "<id>", "probe_id": "<probe>", "streams": [<stream>, ...], "v": 2}

``batch_id`` and ``probe_id`` are non-empty strings, and the body has no other keys; every
result of the batch is the probe's (no stream names a probe). A stream object has these keys,
then the columns below, and no others:

========================  =====================================================================
stream key                value
========================  =====================================================================
``method``                ``"icmp"``, ``"stamp"`` or ``"traceroute"``
``src_site``,             non-empty strings (the directed path and its two addresses)
``src_carrier``,
``dst_site``,
``dst_carrier``,
``src_addr``,
``dst_addr``
``type_p``                ``{"protocol": "icmp"|"udp"|"tcp", "ip_version": 4|6, "size": int,
                          "dscp": 0..63 (default 0), "dst_port": int or null (default null)}``
``session``               a string, may be empty (default ``""``)
``n``                     the number of results in the stream, an integer >= 1
========================  =====================================================================

A dense *column* is either a JSON list of exactly ``n`` values (value ``k``
belongs to the stream's result ``k``) or one value that stands for all ``n`` (``"tmax_ns":
3000000000``):

========================  ================================================  ==================
column                    each value                                        if absent
========================  ================================================  ==================
``idx``                   the result's position in the batch, ``0..N-1``    required
                          (``N`` = the sum of all ``n``); increasing within
                          a stream, every position in exactly one stream.
                          One integer ``i`` stands for ``i, i+1, ..., i+n-1``
``seq``                   integer >= 0                                      required
``sent_at_ns``            integer: wall-clock UTC send time                 required
``tmax_ns``               integer > 0                                       required
``status``                code: 0 received, 1 lost, 2 error                 required
``ts_source``             code: 0 hardware, 1 kernel, 2 user, 3 imported    required
``rtt_ns``                integer >= 0, or null                             null
``fwd_ns``, ``bwd_ns``,   integer or null                                   null
``clock_error_ns``,
``reply_ttl``
``src_synced``,           ``true``, ``false`` or null                       null
``dst_synced``
``error``                 null or a code: 0 send_error, 1 malformed_reply,  null
                          2 clock_step, 3 clock_fault, 4 local_drop, 5 other
``dup``                   integer: extra copies received                    0
``v``                     the record's schema version: 1                    1
========================  ================================================  ==================

An integer is a JSON number without fraction or exponent (``true`` and ``1.0`` are not), in
``-(2**63-1) .. 2**63-1``. Two *sparse* columns list only the results that have a value, as
``[k, value]`` pairs with ``k`` (the result's position in the stream) increasing:
``error_detail`` ``[[k, "text"], ...]`` and ``hops`` ``[[k, [[ttl, addr or null, rtt_ns or
null], ...]], ...]`` (a non-empty hop list; traceroute); absent or ``[]`` means none.

Per result, as in v1: a received result has ``rtt_ns`` or ``fwd_ns``, a lost one has neither,
an error names its ``error`` code. Two streams of one batch must differ in some stream key;
they may come in any order (the encoder writes them in the order of their first result); a
body holds at most :data:`MAX_RESULTS` (100,000) results. ``status``, ``ts_source`` and
``error`` codes index :data:`STATUS_CODES`, :data:`TS_SOURCE_CODES` and :data:`ERROR_CODES`;
new codes are only ever appended. Example: two ICMP results of one stream, the second lost
(wrapped here; the body has no line breaks)::

    {"batch_id":"b7","probe_id":"p1","streams":[{"bwd_ns":null,"clock_error_ns":null,
    "dst_addr":"198.18.65.10","dst_carrier":"CM","dst_site":"b","dst_synced":null,"dup":0,
    "error":null,"error_detail":[],"fwd_ns":null,"hops":[],"idx":0,"method":"icmp","n":2,
    "reply_ttl":[60,null],"rtt_ns":[1200000,null],"sent_at_ns":[1790000000000000000,
    1790000000020000000],"seq":[7,8],"session":"","src_addr":"198.18.1.10","src_carrier":"CT",
    "src_site":"a","src_synced":null,"status":[0,1],"tmax_ns":3000000000,"ts_source":1,
    "type_p":{"dscp":0,"dst_port":null,"ip_version":4,"protocol":"icmp","size":64},"v":1}],
    "v":2}

An invalid body is refused with a :class:`RecordError` whose message starts with ``field
'<where>': `` naming the exact JSON location, e.g. ``field 'streams[2].rtt_ns[17]': expected
an integer or null, got 1.5`` (``[k]``, the result's position in the stream, is left out where
the column was sent as one value, except for the per-result rules), or with ``body: not valid
JSON``. Values are checked column by column: JSON types of all columns first, then ranges, then
``idx``, then the per-result rules; the first failure is reported.

:func:`decode_batch` reads both versions into records and is the reference: the collector reads
v2 straight into numpy columns (:mod:`analyzer.wire_columns`) and, for a body it refuses, lets
the reference word the error.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import hmac
import json
import operator
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any, NamedTuple, NoReturn, TypeVar

import orjson

from ixmeter.errors import RecordError
from ixmeter.record import (
    SCHEMA_VERSION,
    ErrorKind,
    Hop,
    Method,
    Result,
    Status,
    TimestampSource,
    TypeP,
    _fetch_type_p,
    _hops,
    _type_p,
    _type_p_fast,
    from_dict,
)

WIRE_VERSION = 1
WIRE_VERSION_COLUMNS = 2
HEADER_PROBE = "X-Ixmeter-Probe"
HEADER_TIMESTAMP = "X-Ixmeter-Timestamp"
HEADER_NONCE = "X-Ixmeter-Nonce"
HEADER_SIGNATURE = "X-Ixmeter-Signature"
HEADER_DIGEST = "X-Ixmeter-Content-SHA256"
MAX_SKEW_S = 300
_T = TypeVar("_T")

# -- v2 code tables: the source of truth (analyzer.columns uses them); append only ---------------
STATUS_CODES: tuple[str, ...] = ("received", "lost", "error")
TS_SOURCE_CODES: tuple[str, ...] = ("hardware", "kernel", "user", "imported")
ERROR_CODES: tuple[str, ...] = ("send_error", "malformed_reply", "clock_step", "clock_fault",
                                "local_drop", "other")
MAX_RESULTS = 100_000  # per body (a probe's batch_size is at most this)
INT64_MAX = 2**63 - 1
INT64_MIN = -INT64_MAX  # -2**63 itself is the columns' null

STREAM_STRINGS = ("src_site", "src_carrier", "dst_site", "dst_carrier", "src_addr", "dst_addr")
_NONE: type = type(None)
_INT, _INT_NULL = frozenset({int}), frozenset({int, _NONE})
# Dense columns in block order (analyzer.columns INT_COLUMNS then CODE_COLUMNS): allowed exact
# JSON types of a value. Flags are the two bool columns.
DENSE_TYPES: dict[str, frozenset[type]] = {
    "idx": _INT, "seq": _INT, "sent_at_ns": _INT, "tmax_ns": _INT, "rtt_ns": _INT_NULL,
    "fwd_ns": _INT_NULL, "bwd_ns": _INT_NULL, "clock_error_ns": _INT_NULL, "dup": _INT,
    "reply_ttl": _INT_NULL, "v": _INT, "status": _INT, "ts_source": _INT, "error": _INT_NULL,
    "src_synced": frozenset({bool, _NONE}), "dst_synced": frozenset({bool, _NONE}),
}
FLAG_COLUMNS = ("src_synced", "dst_synced")
_MISSING: Any = object()
# What an absent column means, in DENSE_TYPES order; _MISSING: required.
_DEFAULTS: dict[str, Any] = {
    "idx": _MISSING, "seq": _MISSING, "sent_at_ns": _MISSING, "tmax_ns": _MISSING,
    "rtt_ns": None, "fwd_ns": None, "bwd_ns": None, "clock_error_ns": None, "dup": 0,
    "reply_ttl": None, "v": SCHEMA_VERSION, "status": _MISSING, "ts_source": _MISSING,
    "error": None, "src_synced": None, "dst_synced": None}
_EXPECTED = {_INT: "an integer", _INT_NULL: "an integer or null",
             DENSE_TYPES["src_synced"]: "true/false/null"}
_STREAM_KEYS = frozenset(("method", "type_p", "session", "n", "error_detail", "hops")
                         + STREAM_STRINGS) | DENSE_TYPES.keys()
_ENVELOPE_KEYS = frozenset(("v", "probe_id", "batch_id", "streams"))
_METHODS = frozenset(m.value for m in Method)


@dataclass(frozen=True, slots=True)
class Batch:
    """A probe's batch of results; (probe_id, batch_id) identifies it for exactly-once ingest."""

    probe_id: str
    batch_id: str
    results: tuple[Result, ...]
    v: int = WIRE_VERSION


def encode_batch(batch: Batch) -> bytes:
    """Canonical JSON bytes (sorted keys, no spaces) of a batch in wire format v1."""
    obj = {"v": batch.v, "probe_id": batch.probe_id, "batch_id": batch.batch_id,
           "results": [r.to_dict() for r in batch.results]}
    return _canonical(obj)


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def decode_batch(body: bytes) -> Batch:
    """Parse a v1 or v2 body into records; raise :class:`RecordError` naming the field
    (``results[3].seq``, ``streams[0].rtt_ns[5]``). A v2 body's results come in ``idx`` order."""
    size = len(body)
    return loads_with(body, lambda obj: batch_from_json(within_size(obj, size)))


def within_size(obj: Any, size: int) -> Any:
    """``obj``, unless it is a v2 body claiming more results than its ``size`` in bytes.

    A body whose columns are all single values can claim 100,000 results in a few hundred
    bytes and make a decoder expand them; a probe's bodies take 20 bytes a result or more
    (send times differ), so one result per byte refuses only such bodies, before any
    expansion. Claims over :data:`MAX_RESULTS` are left to that limit's own error."""
    if not isinstance(obj, Mapping) or obj.get("v") != WIRE_VERSION_COLUMNS:
        return obj
    streams = obj.get("streams")
    claimed = sum(n for st in streams if isinstance(st, Mapping) and type(n := st.get("n")) is int
                  and n > 0) if isinstance(streams, list) else 0
    if size < claimed <= MAX_RESULTS:
        raise RecordError(f"field 'streams': {claimed} results claimed in a body of {size} "
                          "bytes (at most one result per byte)")
    return obj


def loads_with(body: bytes, build: Callable[[Any], _T]) -> _T:
    """``build`` applied to the parsed body; a bad body raises :class:`RecordError`.

    orjson parses about twice as fast as :mod:`json`, but differs at the edges: it refuses NaN,
    lone surrogates, a BOM and UTF-16/32 bodies, and reads an integer beyond 64 bits as a float.
    So a body that fails in any way when read with orjson is read again with ``json``, which
    decides as before and words the error as before; only bad bodies pay for the second reading.
    """
    try:
        return build(orjson.loads(body))
    except (orjson.JSONDecodeError, RecordError):
        pass
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as exc:  # incl. JSONDecodeError, UnicodeDecodeError
        raise RecordError(f"body: not valid JSON ({exc})") from None
    return build(obj)


def batch_from_json(obj: Any) -> Batch:
    """The batch of a parsed body of either version."""
    if isinstance(obj, Mapping) and obj.get("v") == WIRE_VERSION_COLUMNS:
        return _columns_batch(obj)
    return _batch_from(obj)


def _batch_from(obj: Any) -> Batch:
    """Check a v1 body's envelope and decode its results."""
    if not isinstance(obj, Mapping):
        raise RecordError("body: expected a JSON object")
    if obj.get("v") != WIRE_VERSION:
        raise RecordError(f"field 'v': unknown wire version {obj.get('v')!r}")
    probe_id, batch_id = _envelope_ids(obj)
    items = obj.get("results")
    if not isinstance(items, list):
        raise RecordError("field 'results': expected a list")
    return Batch(probe_id, batch_id, _decode_results(items, probe_id))


def _envelope_ids(obj: Mapping[str, Any]) -> tuple[str, str]:
    probe_id, batch_id = obj.get("probe_id"), obj.get("batch_id")
    for name, value in (("probe_id", probe_id), ("batch_id", batch_id)):
        if not isinstance(value, str) or not value:
            raise RecordError(f"field {name!r}: expected a non-empty string, got {value!r}")
    return str(probe_id), str(batch_id)


def _decode_results(items: Sequence[Any], probe_id: str) -> tuple[Result, ...]:
    out = []
    for i, item in enumerate(items):
        try:
            result = from_dict(item)
        except RecordError as exc:
            raise RecordError(f"results[{i}]: {exc}") from None
        if result.probe_id != probe_id:
            raise RecordError(
                f"results[{i}].probe_id: {result.probe_id!r} is not the batch's probe")
        out.append(result)
    return tuple(out)


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


# -- v2: encoder --------------------------------------------------------------------------------
_STATUS_CODE = {Status(s): i for i, s in enumerate(STATUS_CODES)}
_TS_CODE = {TimestampSource(s): i for i, s in enumerate(TS_SOURCE_CODES)}
_ERROR_CODE = {ErrorKind(s): i for i, s in enumerate(ERROR_CODES)}


def encode_columns(batch: Batch) -> bytes:
    """Canonical JSON bytes (sorted keys, no spaces) of a batch in wire format v2.

    Streams come in the order of their first result; a column whose values are all equal is
    written as that one value, ``idx`` of consecutive results as its first position. Raises
    :class:`RecordError` for a result of another probe (v2 has no per-stream probe)."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, r in enumerate(batch.results):
        if r.probe_id != batch.probe_id:
            raise RecordError(f"results[{i}].probe_id: {r.probe_id!r} is not the batch's probe")
        groups.setdefault(_stream_key(r), []).append(i)
    streams = [_stream_obj([batch.results[i] for i in where], where)
               for where in groups.values()]
    return _canonical({"v": WIRE_VERSION_COLUMNS, "probe_id": batch.probe_id,
                       "batch_id": batch.batch_id, "streams": streams})


def _stream_key(r: Result) -> tuple[Any, ...]:
    return (r.method, r.src_site, r.src_carrier, r.dst_site, r.dst_carrier, r.src_addr,
            r.dst_addr, r.type_p, r.session)


def _stream_obj(rs: list[Result], where: list[int]) -> dict[str, Any]:
    """One stream's object: its keys from the first result, then its columns."""
    first, t = rs[0], rs[0].type_p
    obj: dict[str, Any] = {name: getattr(first, name) for name in STREAM_STRINGS}
    obj.update(method=first.method.value, session=first.session, n=len(rs),
               type_p={"protocol": t.protocol, "ip_version": t.ip_version, "size": t.size,
                       "dscp": t.dscp, "dst_port": t.dst_port})
    run = where[-1] - where[0] == len(where) - 1  # increasing, so consecutive
    obj["idx"] = where[0] if run else where
    for name in ("seq", "sent_at_ns", "tmax_ns", "rtt_ns", "fwd_ns", "bwd_ns",
                 "clock_error_ns", "dup", "reply_ttl", "v", "src_synced", "dst_synced"):
        obj[name] = _compact([getattr(r, name) for r in rs])
    obj["status"] = _compact([_STATUS_CODE[r.status] for r in rs])
    obj["ts_source"] = _compact([_TS_CODE[r.ts_source] for r in rs])
    obj["error"] = _compact([None if r.error is None else _ERROR_CODE[r.error] for r in rs])
    obj["error_detail"] = [[k, r.error_detail] for k, r in enumerate(rs)
                           if r.error_detail is not None]
    obj["hops"] = [[k, [[h.ttl, h.addr, h.rtt_ns] for h in r.hops]]
                   for k, r in enumerate(rs) if r.hops]
    return obj


def _compact(values: list[Any]) -> Any:
    """One value if all are the same (same type too: ``1`` is not ``true``), else the list."""
    first = values[0]
    kind = type(first)
    if all(x == first and type(x) is kind for x in values):
        return first
    return values


# -- v2: structure (shared with the collector's numpy decoder) ---------------------------------
class Stream(NamedTuple):
    """One stream of a v2 body whose keys and shape were checked.

    ``pos`` is its index in the body's ``streams`` list, ``start`` the offset of its first value
    in a batch-wide column (the streams' values one after the other, in body order),
    ``columns`` each dense column as sent (a list of ``n`` values or one value)."""

    pos: int
    ident: tuple[Any, ...]
    n: int
    start: int
    columns: dict[str, Any]
    error_detail: tuple[tuple[int, str], ...]
    hops: tuple[tuple[int, tuple[Hop, ...]], ...]


def read_streams(obj: Any) -> tuple[str, str, list[Stream]]:
    """Check a v2 body's envelope and each stream's keys, identity, sparse columns and the
    shape of its dense columns; return probe id, batch id and the streams. The dense columns'
    values are checked by :func:`decode_batch` (value by value) or by
    ``analyzer.wire_columns`` (whole columns at once)."""
    if not isinstance(obj, Mapping):
        raise RecordError("body: expected a JSON object")
    if obj.get("v") != WIRE_VERSION_COLUMNS:
        raise RecordError(f"field 'v': unknown wire version {obj.get('v')!r}")
    _no_unknown_keys(obj, _ENVELOPE_KEYS, "")
    probe_id, batch_id = _envelope_ids(obj)
    items = obj.get("streams")
    if not isinstance(items, list):
        raise RecordError(f"field 'streams': expected a list, got {items!r}")
    streams: list[Stream] = []
    seen: dict[tuple[Any, ...], int] = {}
    total = 0
    for i, item in enumerate(items):
        stream = _read_stream(i, item, probe_id, total)
        if stream.ident in seen:
            raise RecordError(f"field 'streams[{i}]': the same stream as "
                              f"streams[{seen[stream.ident]}]")
        seen[stream.ident] = i
        streams.append(stream)
        total += stream.n
    return probe_id, batch_id, streams


def _no_unknown_keys(obj: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    if not known.issuperset(obj):
        name = min(str(k) for k in obj if k not in known)
        if name.isidentifier():
            raise RecordError(f"field '{where}{name}': unknown key")
        raise RecordError(f"field '{where.rstrip('.') or 'body'}': unknown key {name!r}")


def _read_stream(i: int, item: Any, probe_id: str, total: int) -> Stream:
    at = f"streams[{i}]."
    if type(item) is not dict:
        raise RecordError(f"field 'streams[{i}]': expected an object, got {item!r}")
    _no_unknown_keys(item, _STREAM_KEYS, at)
    n = item.get("n")
    if type(n) is not int or n < 1:
        raise RecordError(f"field '{at}n': expected an integer >= 1, got {n!r}")
    if total + n > MAX_RESULTS:
        raise RecordError(f"field '{at}n': the batch would hold more than {MAX_RESULTS} results")
    columns = {name: item.get(name, default) for name, default in _DEFAULTS.items()}
    for name, value in columns.items():
        if type(value) is list:
            if len(value) != n:
                raise RecordError(f"field '{at}{name}': expected {n} values, got {len(value)}")
        elif value is _MISSING:
            raise RecordError(f"field '{at}{name}': missing (a list of n values or one value)")
    detail, hops = item.get("error_detail", []), item.get("hops", [])
    return Stream(i, _ident(item, at, probe_id), n, total, columns,
                  () if detail == [] else _sparse(detail, "error_detail", at, n, _detail),
                  () if hops == [] else _sparse(hops, "hops", at, n, _hop_list))


def _ident(item: dict[str, Any], at: str, probe_id: str) -> tuple[Any, ...]:
    """The stream's identity in ``analyzer.columns.STREAM_FIELDS`` order."""
    method, *names, session, type_p = _fetch_ident(item)
    if type(method) is not str or method not in _METHODS:
        raise RecordError(f"field '{at}method': {method!r} is not one of "
                          f"{', '.join(sorted(_METHODS))}")
    for name, value in zip(STREAM_STRINGS, names, strict=True):
        if type(value) is not str or not value:
            raise RecordError(f"field '{at}{name}': expected a non-empty string, got {value!r}")
    if type(session) is not str:
        raise RecordError(f"field '{at}session': expected a string, got {session!r}")
    t = (_type_p_fast(type_p) if type(type_p) is dict else None) or _stream_type_p(type_p, at)
    return (probe_id, method, *names, t.protocol, t.ip_version, t.size, t.dscp, t.dst_port,
            session)


def _fetch_ident(item: dict[str, Any]) -> tuple[Any, ...]:
    """method, the stream strings, session (default "") and type_p of a stream object."""
    return (item.get("method"), *map(item.get, STREAM_STRINGS), item.get("session", ""),
            item.get("type_p"))


def _stream_type_p(value: Any, at: str) -> TypeP:
    """The Type-P through the v1 rules (:func:`ixmeter.record._type_p`), errors relocated."""
    try:
        return _type_p(value)
    except RecordError as exc:
        raise _relocated(exc, at + "type_p", "type_p") from None


def _relocated(exc: RecordError, root: str, old_root: str) -> RecordError:
    """``exc`` with its ``field 'X'`` moved under ``root``: a field starting with
    ``old_root`` has that prefix replaced, any other becomes ``root.X``."""
    message = str(exc)
    name, sep, rest = message.removeprefix("field '").partition("': ")
    if not sep or not message.startswith("field '"):
        return RecordError(f"field {root!r}: {message}")
    name = (root + name.removeprefix(old_root) if name.startswith(old_root)
            else f"{root}.{name}")
    return RecordError(f"field {name!r}: {rest}")


def _sparse(pairs: Any, name: str, at: str, n: int,
            value_of: Callable[[Any, str], _T]) -> tuple[tuple[int, _T], ...]:
    """A sparse column: ``[[k, value], ...]`` with ``k`` increasing in ``0..n-1``."""
    if type(pairs) is not list:
        raise RecordError(f"field '{at}{name}': expected a list of [k, value] pairs, "
                          f"got {pairs!r}")
    out: list[tuple[int, _T]] = []
    for j, pair in enumerate(pairs):
        where = f"{at}{name}[{j}]"
        if type(pair) is not list or len(pair) != 2:
            raise RecordError(f"field {where!r}: expected [k, value], got {pair!r}")
        k = pair[0]
        low = out[-1][0] + 1 if out else 0
        if type(k) is not int or not low <= k < n:
            raise RecordError(f"field '{where}[0]': expected an integer in {low}..{n - 1} "
                              f"(increasing), got {k!r}")
        out.append((k, value_of(pair[1], where + "[1]")))
    return tuple(out)


def _detail(value: Any, where: str) -> str:
    if type(value) is not str:
        raise RecordError(f"field {where!r}: expected a string, got {value!r}")
    return value


def _hop_list(value: Any, where: str) -> tuple[Hop, ...]:
    """A non-empty hop list through the v1 rules (:func:`ixmeter.record._hops`)."""
    if type(value) is not list or not value:
        raise RecordError(f"field {where!r}: expected a non-empty list of hops, got {value!r}")
    try:
        return _hops(value)
    except RecordError as exc:
        raise _relocated(exc, where, "hops") from None


# -- v2: structure across streams (the collector's fast path) ---------------------------------
class StreamTable(NamedTuple):
    """The streams of a v2 body, column-major: entry ``i`` of each sequence is stream ``i``'s
    (body order); ``columns`` holds each dense column as each stream sent it (a list of values
    or one value; the default where absent). :func:`read_table` checks everything
    :func:`read_streams` does except the length of the dense columns' lists, which their
    reader checks along with their values."""

    idents: Sequence[tuple[Any, ...]]
    ns: Sequence[int]
    columns: dict[str, Sequence[Any]]
    error_detail: Sequence[tuple[tuple[int, str], ...]]
    hops: Sequence[tuple[tuple[int, tuple[Hop, ...]], ...]]


# A stream object's values in this order: identity, n, dense columns, sparse columns.
_TABLE_KEYS = ("method", *STREAM_STRINGS, "session", "type_p", "n", *DENSE_TYPES,
               "error_detail", "hops")
_fetch_stream = operator.itemgetter(*_TABLE_KEYS)
_OPTIONAL: dict[str, Any] = {"session": "", "error_detail": [], "hops": [], **{
    name: value for name, value in _DEFAULTS.items() if value is not _MISSING}}
_STR, _DICT = frozenset({str}), frozenset({dict})


def read_table(obj: Any) -> tuple[str, str, StreamTable]:
    """Probe id, batch id and the streams of a v2 body as a :class:`StreamTable`.

    A body of plain streams (every identity key present with exact JSON types, as
    :func:`encode_columns` writes them) is checked with a few operations per key over all
    streams at once; any other body goes through :func:`read_streams`, which accepts it
    alike or raises the error naming the field."""
    fast = _plain_table(obj)
    if fast is not None:
        return fast
    probe_id, batch_id, streams = read_streams(obj)
    return probe_id, batch_id, StreamTable(
        [s.ident for s in streams], [s.n for s in streams],
        {name: [s.columns[name] for s in streams] for name in DENSE_TYPES},
        [s.error_detail for s in streams], [s.hops for s in streams])


def _plain_table(obj: Any) -> tuple[str, str, StreamTable] | None:
    """The table of a body of plain streams that breaks no structure rule, else None."""
    if type(obj) is not dict or obj.keys() != _ENVELOPE_KEYS or obj["v"] != WIRE_VERSION_COLUMNS:
        return None
    probe_id, batch_id, items = obj["probe_id"], obj["batch_id"], obj["streams"]
    if not (type(probe_id) is str and probe_id and type(batch_id) is str and batch_id
            and type(items) is list and items and set(map(type, items)) == _DICT):
        return None
    keys = _stream_keys(items)
    if keys is None:
        return None
    ns, dense, details, hops = keys[9], keys[10:-2], keys[-2], keys[-1]
    idents = _plain_idents(probe_id, keys[0], keys[1:7], keys[7], keys[8])
    if (idents is None or len(set(idents)) != len(idents) or set(map(type, ns)) != _INT
            or min(ns) < 1 or sum(ns) > MAX_RESULTS):
        return None
    sparse = _plain_sparse(details, hops, ns)
    if sparse is None:
        return None
    return probe_id, batch_id, StreamTable(idents, ns, dict(zip(DENSE_TYPES, dense, strict=True)),
                                           *sparse)


def _stream_keys(items: list[dict[str, Any]]) -> list[tuple[Any, ...]] | None:
    """Per key of :data:`_TABLE_KEYS`, every stream's value (the default where absent); None if
    a stream has an unknown key or lacks a required one."""
    order = tuple(items[0])
    where = _key_positions(order)
    if where is not None and all(map(order.__eq__, map(tuple, items))):
        # Every stream has every key, in one order: take the values as they lie.
        values = list(zip(*map(dict.values, items), strict=True))
        return [values[k] for k in where]
    if not all(map(_STREAM_KEYS.issuperset, items)):
        return None
    full = len(_STREAM_KEYS)
    try:
        return list(zip(*map(_fetch_stream, (item if len(item) == full else {**_OPTIONAL, **item}
                                             for item in items)), strict=True))
    except KeyError:  # a required key is missing
        return None


@functools.lru_cache(maxsize=16)
def _key_positions(order: tuple[str, ...]) -> tuple[int, ...] | None:
    """Where each key of :data:`_TABLE_KEYS` is in ``order``, if ``order`` has them all and
    nothing else."""
    if len(order) != len(_TABLE_KEYS) or set(order) != set(_TABLE_KEYS):
        return None
    return tuple(order.index(name) for name in _TABLE_KEYS)


def _plain_idents(probe_id: str, method: Sequence[Any], names: Sequence[Sequence[Any]],
                  session: Sequence[Any], type_p: Sequence[Any]) -> list[tuple[Any, ...]] | None:
    """The streams' identities (``analyzer.columns.STREAM_FIELDS`` order) if every identity
    key has a valid value, its Type-P with all five keys of exact types; else None."""
    if (set(map(type, chain(method, session, *names))) != _STR
            or not _METHODS.issuperset(method) or not all(map(all, names))
            or set(map(type, type_p)) != _DICT):
        return None
    try:
        fields = list(map(_fetch_type_p, type_p))
    except KeyError:
        return None
    protocol, ip_version, size, dscp, dst_port = zip(*fields, strict=True)
    if (set(map(type, protocol)) != _STR or set(map(type, chain(ip_version, size, dscp))) != _INT
            or not _INT_NULL.issuperset(map(type, dst_port))):
        return None
    # Types are exact, so equal field tuples are the same Type-P: check each distinct one once.
    distinct = dict(zip(fields, type_p, strict=True))
    if any(_type_p_fast(value) is None for value in distinct.values()):
        return None
    return list(zip(repeat(probe_id), method, *names, protocol, ip_version, size, dscp,
                    dst_port, session))


def _plain_sparse(details: Sequence[Any], hops: Sequence[Any], ns: Sequence[int]
                  ) -> tuple[Sequence[Any], Sequence[Any]] | None:
    """Each stream's ``error_detail`` and ``hops`` pairs, or None if one breaks a rule."""
    try:
        return (_sparse_column(details, ns, "error_detail", _detail),
                _sparse_column(hops, ns, "hops", _hop_list))
    except RecordError:
        return None


def _sparse_column(values: Sequence[Any], ns: Sequence[int], name: str,
                   value_of: Callable[[Any, str], _T]) -> Sequence[tuple[tuple[int, _T], ...]]:
    if values.count([]) == len(values):
        return [()] * len(values)
    return [() if v == [] else _sparse(v, name, "", n, value_of)
            for v, n in zip(values, ns, strict=True)]


# -- v2: values -----------------------------------------------------------------------------
def _flat_column(streams: Sequence[Stream], name: str) -> list[Any]:
    """Column ``name`` of all streams, body order, one value per result (a single value
    repeated, an ``idx`` run expanded); raises :class:`RecordError` at the first value of a
    wrong JSON type."""
    flat: list[Any] = []
    for s in streams:
        value = s.columns[name]
        if type(value) is list:
            flat += value
        elif name == "idx" and type(value) is int:
            flat += range(value, value + s.n)
        else:
            flat += [value] * s.n
    allowed = DENSE_TYPES[name]
    if not allowed.issuperset(map(type, flat)):
        pos = next(p for p, x in enumerate(flat) if type(x) not in allowed)
        _fail(streams, name, pos, f"expected {_EXPECTED[allowed]}, got {flat[pos]!r}")
    return flat


def _fail(streams: Sequence[Stream], name: str, pos: int, message: str, *,
         indexed: bool = False) -> NoReturn:
    """Raise the error for value ``pos`` of batch-wide column ``name``: located as
    ``streams[i].name[k]``, or ``streams[i].name`` where the column is one value (unless
    ``indexed``: a rule about result ``k``)."""
    s = streams[bisect.bisect_right([t.start for t in streams], pos) - 1]
    k = pos - s.start
    where = f"streams[{s.pos}].{name}"
    if indexed or type(s.columns[name]) is list:
        where += f"[{k}]"
    raise RecordError(f"field {where!r}: {message}")


@dataclass(frozen=True, slots=True)
class Bound:
    """A range rule for one column: every non-null value in ``low..high``."""

    column: str
    low: int
    high: int
    message: str  # formatted with the value


def bounds(total: int) -> list[Bound]:
    """The single-column range rules in the order they are checked: for each integer column
    in :data:`DENSE_TYPES` order, the int64 range, then its own rule if it has one."""
    own = {
        "idx": Bound("idx", 0, total - 1, f"{{}} is not a position in the batch (0..{total - 1})"),
        "seq": Bound("seq", 0, INT64_MAX, "must be >= 0, got {}"),
        "tmax_ns": Bound("tmax_ns", 1, INT64_MAX, "must be positive, got {}"),
        "rtt_ns": Bound("rtt_ns", 0, INT64_MAX, "negative value {}"),
        "v": Bound("v", SCHEMA_VERSION, SCHEMA_VERSION, "unknown schema version {}"),
        "status": _code_bound("status", STATUS_CODES),
        "ts_source": _code_bound("ts_source", TS_SOURCE_CODES),
        "error": _code_bound("error", ERROR_CODES),
    }
    rules = []
    for name in DENSE_TYPES:
        if name in FLAG_COLUMNS:
            continue
        rules.append(Bound(name, INT64_MIN, INT64_MAX,
                           "{} is out of range (-(2**63-1) .. 2**63-1)"))
        if name in own:
            rules.append(own[name])
    return rules


def _code_bound(name: str, table: tuple[str, ...]) -> Bound:
    codes = ", ".join(f"{i} {s}" for i, s in enumerate(table))
    return Bound(name, 0, len(table) - 1, f"{{}} is not a code ({codes})")


def _check_bound(streams: Sequence[Stream], rule: Bound, values: list[Any]) -> None:
    """Raise at the first non-null value of batch-wide column ``values`` outside the rule."""
    present = [x for x in values if x is not None]
    if present and rule.low <= min(present) and max(present) <= rule.high:
        return
    for pos, x in enumerate(values):
        if x is not None and not rule.low <= x <= rule.high:
            _fail(streams, rule.column, pos, rule.message.format(x))


# The per-result rules, checked after the bounds and the idx order, in this order.
_NEEDS_DELAY = "a received result needs rtt_ns or fwd_ns"
_NO_DELAY = "a lost result has no delay"
_NEEDS_ERROR = "an error result must name its ErrorKind"
_IDX_ORDER = "must increase within a stream, got {} after {}"
_IDX_TWICE = "position {} is in the batch twice"


def _check_values(streams: Sequence[Stream], cols: Mapping[str, list[Any]]) -> None:
    """Every value rule of v2 over the batch-wide columns: :func:`bounds`, idx increasing
    within each stream and no position twice, then per result :data:`_NEEDS_DELAY`,
    :data:`_NO_DELAY`, :data:`_NEEDS_ERROR`; the first violation in that order (then body
    order) raises."""
    for rule in bounds(sum(s.n for s in streams)):
        _check_bound(streams, rule, cols[rule.column])
    idx = cols["idx"]
    for s in streams:
        for pos in range(s.start + 1, s.start + s.n):
            if idx[pos] <= idx[pos - 1]:
                _fail(streams, "idx", pos, _IDX_ORDER.format(idx[pos], idx[pos - 1]))
    seen: set[int] = set()
    for pos, x in enumerate(idx):
        if x in seen:
            _fail(streams, "idx", pos, _IDX_TWICE.format(x))
        seen.add(x)
    received, lost, error = (STATUS_CODES.index(s) for s in ("received", "lost", "error"))
    for pos, (st, rtt, fwd, err) in enumerate(zip(cols["status"], cols["rtt_ns"], cols["fwd_ns"],
                                                  cols["error"], strict=True)):
        if st == received and rtt is None and fwd is None:
            _fail(streams, "rtt_ns", pos, _NEEDS_DELAY, indexed=True)
        if st == lost and (rtt is not None or fwd is not None):
            _fail(streams, "rtt_ns", pos, _NO_DELAY, indexed=True)
        if st == error and err is None:
            _fail(streams, "error", pos, _NEEDS_ERROR, indexed=True)


def _columns_batch(obj: Any) -> Batch:
    """A v2 body as records, in ``idx`` order."""
    probe_id, batch_id, streams = read_streams(obj)
    cols = {name: _flat_column(streams, name) for name in DENSE_TYPES}
    _check_values(streams, cols)
    out: list[Result | None] = [None] * sum(s.n for s in streams)
    for s in streams:
        details, hops = dict(s.error_detail), dict(s.hops)
        for k in range(s.n):
            row = {c: v[s.start + k] for c, v in cols.items()}
            out[row["idx"]] = _result(s, row, details.get(k), hops.get(k, ()))
    return Batch(probe_id, batch_id, tuple(r for r in out if r is not None))


def _result(s: Stream, row: dict[str, Any], detail: str | None,
            hops: tuple[Hop, ...]) -> Result:
    """Result ``row`` (its dense values by column) of stream ``s``."""
    (probe_id, method, src_site, src_carrier, dst_site, dst_carrier, src_addr, dst_addr,
     protocol, ip_version, size, dscp, dst_port, session) = s.ident
    error = row["error"]
    return Result(
        probe_id=probe_id, method=Method(method), src_site=src_site, src_carrier=src_carrier,
        dst_site=dst_site, dst_carrier=dst_carrier, src_addr=src_addr, dst_addr=dst_addr,
        type_p=TypeP(protocol, ip_version, size, dscp, dst_port), seq=row["seq"],
        sent_at_ns=row["sent_at_ns"], status=Status(STATUS_CODES[row["status"]]),
        tmax_ns=row["tmax_ns"], ts_source=TimestampSource(TS_SOURCE_CODES[row["ts_source"]]),
        rtt_ns=row["rtt_ns"], fwd_ns=row["fwd_ns"], bwd_ns=row["bwd_ns"],
        clock_error_ns=row["clock_error_ns"], src_synced=row["src_synced"],
        dst_synced=row["dst_synced"],
        error=None if error is None else ErrorKind(ERROR_CODES[error]), error_detail=detail,
        dup=row["dup"], reply_ttl=row["reply_ttl"], session=session, hops=hops, v=row["v"])
