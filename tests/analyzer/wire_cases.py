"""Shared pieces of the body tests: valid batches (hypothesis), a small two-stream body to
edit, JSON path edits and the comparison of a decoded body with the oracle's reading."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from analyzer.columns import Block, ColumnBatch, results_of
from analyzer.wire_columns import decode_body
from ixmeter.core.errors import RecordError
from ixmeter.core.record import ErrorKind, Hop, Method, Result, Status, TimestampSource, TypeP
from ixmeter.core.rules import CLOCK_ERROR_MAX_NS, SENT_AT_END_NS, SENT_AT_MIN_NS, TMAX_MAX_NS
from ixmeter.core.wire import Batch, encode_columns
from tests.analyzer import wire_oracle

PROBE = "cs-tianyi-zn-ct"
I64 = 2**63 - 1


def same_blocks(got: tuple[Block, ...], want: tuple[Block, ...]) -> bool:
    return len(got) == len(want) and all(g.same_as(w) for g, w in zip(got, want, strict=True))


def results(batch: ColumnBatch) -> list[Result]:
    """The decoded batch's results in ``idx`` order."""
    out = [(int(i), r) for b in batch.blocks for i, r in zip(b.idx, results_of(b), strict=True)]
    return [r for _i, r in sorted(out, key=lambda pair: pair[0])]


def judged(body: bytes) -> ColumnBatch | str:
    """The decoder's batch, or its refusal; anything but RecordError escapes (a failure). The
    oracle must decide alike, and read an accepted body as the same results."""
    try:
        got: ColumnBatch | str = decode_body(body)
    except RecordError as exc:
        got = str(exc)
    try:
        want: tuple[str, str, list[Result]] | str = wire_oracle.read(body)
    except RecordError as exc:
        want = str(exc)
    assert isinstance(got, str) == isinstance(want, str), (got, want)
    if not isinstance(got, str):
        assert not isinstance(want, str)
        assert (got.probe_id, got.batch_id) == want[:2]
        assert results(got) == want[2]
    return got


# -- valid batches --------------------------------------------------------------------------------
text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8)
addrs = st.ip_addresses().map(str)
type_ps = st.builds(TypeP, st.sampled_from(["icmp", "udp", "tcp"]), st.sampled_from([4, 6]),
                    st.integers(0, 65535), st.integers(0, 63), st.none() | st.integers(0, 65535))
streams = st.fixed_dictionaries({
    "method": st.sampled_from(Method), "src_site": text, "src_carrier": text, "dst_site": text,
    "dst_carrier": text, "src_addr": addrs, "dst_addr": addrs, "type_p": type_ps,
    "session": st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=4)})


@st.composite
def results_for(draw: st.DrawFn, stream: dict[str, Any]) -> Result:
    """A valid result of ``stream``: any status, delays within Tmax, extremes included."""
    tmax = draw(st.sampled_from([1, 3 * 10**9, TMAX_MAX_NS]) | st.integers(1, TMAX_MAX_NS))
    delay = st.none() | st.integers(0, tmax) | st.sampled_from([0, tmax])
    status = draw(st.sampled_from(Status))
    rtt, fwd = draw(delay), draw(delay)
    if status is Status.LOST:
        rtt = fwd = None
    elif status is Status.RECEIVED and rtt is None and fwd is None:
        rtt = draw(st.integers(0, tmax))
    error = draw(st.none() | st.sampled_from(ErrorKind))
    if status is Status.ERROR and error is None:
        error = ErrorKind.OTHER
    hops = st.lists(st.builds(Hop, st.integers(1, 255), st.none() | addrs, delay),
                    min_size=1, max_size=3).map(tuple)
    return Result(
        probe_id=PROBE, seq=draw(st.integers(0, I64)), status=status, tmax_ns=tmax,
        sent_at_ns=draw(st.integers(SENT_AT_MIN_NS, SENT_AT_END_NS - 1)),
        ts_source=draw(st.sampled_from(TimestampSource)), rtt_ns=rtt, fwd_ns=fwd,
        bwd_ns=draw(delay), clock_error_ns=draw(st.none() | st.integers(0, CLOCK_ERROR_MAX_NS)),
        src_synced=draw(st.none() | st.booleans()), dst_synced=draw(st.none() | st.booleans()),
        error=error, error_detail=draw(st.none() | st.text(
            st.characters(blacklist_categories=("Cs", "Cc")), max_size=6)),
        dup=draw(st.sampled_from([0, 0, 1, 2**31 - 1])), reply_ttl=draw(st.none()
                                                                       | st.integers(0, 255)),
        hops=draw(st.just(()) | hops), **stream)


@st.composite
def batches(draw: st.DrawFn, max_results: int = 30) -> Batch:
    pool = draw(st.lists(streams, min_size=1, max_size=4))
    # Runs of one stream (idx sent as a run) as well as interleaved streams.
    picks = draw(st.lists(st.integers(0, len(pool) - 1), max_size=max_results))
    runs = draw(st.booleans())
    out = [draw(results_for(pool[i])) for i in (sorted(picks) if runs else picks)]
    if draw(st.booleans()):  # some columns the same over a stream: sent as one value
        out = [dataclasses.replace(r, tmax_ns=TMAX_MAX_NS, dup=0, src_synced=None) for r in out]
    return Batch(PROBE, draw(text), tuple(out))


# -- a small body to edit -------------------------------------------------------------------------
def result(**changes: Any) -> Result:
    base: dict[str, Any] = dict(
        probe_id=PROBE, method=Method.ICMP, src_site="cs-tianyi-zn", src_carrier="CT",
        dst_site="cs-yungu", dst_carrier="CM", src_addr="198.18.1.10", dst_addr="198.18.65.10",
        type_p=TypeP("icmp", 4, 64), seq=0, sent_at_ns=1_790_000_000_000_000_000,
        status=Status.RECEIVED, tmax_ns=3_000_000_000, ts_source=TimestampSource.KERNEL,
        rtt_ns=1_000_000)
    base.update(changes)
    return Result(**base)


def base_body() -> dict[str, Any]:
    """Two streams, lists and single values: icmp at idx 0, 2, 3 and stamp at 1, 4."""
    stamp = dict(method=Method.STAMP, type_p=TypeP("udp", 6, 44, 46, 862),
                 src_addr="2001:2::1", dst_addr="2001:2::2", session="s1")
    rs = (
        result(seq=0), result(seq=0, fwd_ns=200, bwd_ns=300, src_synced=True, **stamp),
        result(seq=1, status=Status.LOST, rtt_ns=None), result(seq=2, rtt_ns=2_000_000),
        result(seq=1, status=Status.ERROR, rtt_ns=None, error=ErrorKind.SEND_ERROR,
               error_detail="ENOBUFS", **stamp))
    obj: dict[str, Any] = json.loads(encode_columns(Batch(PROBE, "b1", rs)))
    assert obj["streams"][0]["idx"] == [0, 2, 3]
    assert obj["streams"][1]["idx"] == [1, 4]
    return obj


DELETE = object()


def edit(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    """Set (or, with :data:`DELETE`, remove) the value at ``path``."""
    def apply(obj: dict[str, Any]) -> None:
        *head, last = path
        target: Any = obj
        for key in head:
            target = target[key]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return apply


def paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path in a JSON value."""
    out = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += paths(item, (*path, i))
    return out


def expanded(obj: dict[str, Any]) -> dict[str, Any]:
    """Every dense column one value per result (an idx run as its positions)."""
    out = json.loads(json.dumps(obj))
    for s in out["streams"]:
        for name in ("idx", "seq", "sent_at_ns", "tmax_ns", "rtt_ns", "fwd_ns", "bwd_ns",
                     "clock_error_ns", "dup", "reply_ttl", "v", "status", "ts_source", "error",
                     "src_synced", "dst_synced"):
            value = s[name]
            if not isinstance(value, list):
                s[name] = (list(range(value, value + s["n"])) if name == "idx"
                           else [value] * s["n"])
    return out
