"""A test oracle for the batch body: a plain, slow reading of a body, value by value.

``json`` parses the body; each result is built as an :class:`ixmeter.core.record.Result`, whose
construction applies the rules of :mod:`ixmeter.core.rules` on scalars; the structure rules (keys,
JSON types, int64, ``n``, counts, ``idx``, distinct streams) are spelled out here once more, in
the simplest way. Not a product path: the collector's decoder (``analyzer.wire_columns``) must
accept exactly the bodies this accepts, with the same results.
"""

from __future__ import annotations

import json
from typing import Any

from ixmeter.core.errors import RecordError
from ixmeter.core.record import ErrorKind, Hop, Method, Result, Status, TimestampSource, TypeP
from ixmeter.core.rules import ERROR_CODES, INT64_MAX, MAX_RESULTS, STATUS_CODES, TS_SOURCE_CODES
from ixmeter.core.rules import text_problem as _text

ENVELOPE = {"batch_id", "probe_id", "streams", "v"}
IDENTITY = {"method", "src_site", "src_carrier", "dst_site", "dst_carrier", "src_addr",
            "dst_addr", "type_p"}
OPTIONAL = {"session": "", "error_detail": [], "hops": [], "rtt_ns": None, "fwd_ns": None,
            "bwd_ns": None, "clock_error_ns": None, "reply_ttl": None, "error": None,
            "src_synced": None, "dst_synced": None, "dup": 0, "v": 1}
REQUIRED_COLUMNS = {"idx", "seq", "sent_at_ns", "tmax_ns", "status", "ts_source"}
FLAGS = {"src_synced", "dst_synced"}
NULLABLE = {"rtt_ns", "fwd_ns", "bwd_ns", "clock_error_ns", "reply_ttl", "error"} | FLAGS
STREAM_KEYS = IDENTITY | {"n"} | OPTIONAL.keys() | REQUIRED_COLUMNS


def read(body: bytes) -> tuple[str, str, list[Result]]:
    """(probe_id, batch_id, the results in ``idx`` order) of a valid body; RecordError else."""
    try:
        obj = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise RecordError(f"body: not valid JSON ({exc})") from None
    _need(type(obj) is dict and obj.keys() == ENVELOPE, "envelope")
    _need(type(obj["v"]) is int and obj["v"] == 2, "v")
    for name in ("batch_id", "probe_id"):
        _need(type(obj[name]) is str and _text([obj[name]], 128) is None, name)
    streams = obj["streams"]
    _need(type(streams) is list and all(type(s) is dict for s in streams), "streams")
    ns = [_count(s) for s in streams]
    _need(sum(ns) <= MAX_RESULTS and sum(ns) <= len(body), "counts")
    out: dict[int, Result] = {}
    idents: set[tuple[Any, ...]] = set()
    for s, n in zip(streams, ns, strict=True):
        results = _stream(obj["probe_id"], s, n)
        r = results[0]
        ident = (r.method, r.src_site, r.src_carrier, r.dst_site, r.dst_carrier, r.src_addr,
                 r.dst_addr, r.type_p, r.session)
        _need(ident not in idents, "the same stream twice")
        idents.add(ident)
        idx = _expand(s["idx"], n, "idx")
        _need(all(b > a for a, b in zip(idx, idx[1:], strict=False)), "idx increasing")
        for i, r in zip(idx, results, strict=True):
            _need(type(i) is int and 0 <= i < sum(ns) and i not in out, "idx position")
            out[i] = r
    return obj["probe_id"], obj["batch_id"], [out[i] for i in range(len(out))]


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise RecordError(f"oracle: {what}")


def _count(s: dict[str, Any]) -> int:
    _need(STREAM_KEYS >= s.keys() >= IDENTITY | REQUIRED_COLUMNS | {"n"}, "stream keys")
    n = s["n"]
    _need(type(n) is int and 1 <= n <= MAX_RESULTS, "n")
    return int(n)


def _expand(value: Any, n: int, name: str) -> list[Any]:
    """A dense column as ``n`` values (an ``idx`` run expanded), every value of its JSON type."""
    if type(value) is list:
        _need(len(value) == n, f"{name} length")
        values = value
    elif name == "idx" and type(value) is int:
        values = list(range(value, value + n))
    else:
        values = [value] * n
    for x in values:
        if name in FLAGS:
            _need(x is None or type(x) is bool, name)
        else:
            _need((x is None and name in NULLABLE) or (type(x) is int and abs(x) <= INT64_MAX),
                  name)
    return values


def _code(table: tuple[str, ...], value: Any) -> str:
    _need(0 <= value < len(table), "code")
    return table[value]


def _stream(probe_id: str, s: dict[str, Any], n: int) -> list[Result]:
    cols = {name: _expand(s.get(name, OPTIONAL.get(name)), n, name)
            for name in REQUIRED_COLUMNS | (OPTIONAL.keys() - {"session", "error_detail",
                                                               "hops"})}
    details = _sparse(s.get("error_detail", []), n, str)
    hops = _sparse(s.get("hops", []), n, list)
    t = s["type_p"]
    _need(type(t) is dict and {"protocol", "ip_version", "size"} <= t.keys()
          <= {"protocol", "ip_version", "size", "dscp", "dst_port"}, "type_p")
    _need(type(s["method"]) is str and s["method"] in {m.value for m in Method}, "method")
    out = []
    for k in range(n):
        row = {name: values[k] for name, values in cols.items()}
        error = row.pop("error")
        detail = details.get(k)
        out.append(Result(
            probe_id=probe_id, method=Method(s["method"]), src_site=s["src_site"],
            src_carrier=s["src_carrier"], dst_site=s["dst_site"], dst_carrier=s["dst_carrier"],
            src_addr=s["src_addr"], dst_addr=s["dst_addr"], type_p=TypeP(**t),
            session=s.get("session", ""), status=Status(_code(STATUS_CODES, row.pop("status"))),
            ts_source=TimestampSource(_code(TS_SOURCE_CODES, row.pop("ts_source"))),
            error=None if error is None else ErrorKind(_code(ERROR_CODES, error)),
            error_detail=detail, hops=_hops(hops.get(k)),
            **{name: v for name, v in row.items() if name != "idx"}))
    return out


def _sparse(pairs: Any, n: int, kind: type) -> dict[int, Any]:
    _need(type(pairs) is list, "sparse list")
    out: dict[int, Any] = {}
    for pair in pairs:
        _need(type(pair) is list and len(pair) == 2 and type(pair[0]) is int
              and type(pair[1]) is kind, "pair")
        _need(max(out, default=-1) < pair[0] < n, "pair position")
        out[pair[0]] = pair[1]
    return out


def _hops(value: Any) -> tuple[Hop, ...]:
    if value is None:
        return ()
    _need(type(value) is list and len(value) > 0, "hops")
    for h in value:
        _need(type(h) is list and len(h) == 3 and type(h[0]) is int and abs(h[0]) <= INT64_MAX
              and (h[2] is None or (type(h[2]) is int and abs(h[2]) <= INT64_MAX)), "hop")
    return tuple(Hop(*h) for h in value)
