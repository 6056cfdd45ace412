"""Pure pieces of the store and collector: chain links, error fields, nonces, keys files."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from analyzer.collector.app import field_of, json_bytes, request_headers
from analyzer.collector.auth import Authenticator, NonceCache
from analyzer.collector.keys import KeyRing, KeysError, load_keys, parse_keys, save_keys
from analyzer.store import chain
from analyzer.store.rows import build_result, result_row, stream_of
from ixmeter.record import ErrorKind, Hop, Method, Result, Status, TimestampSource, TypeP
from ixmeter.wire import AuthError, sign


def test_link_is_the_documented_formula() -> None:
    body = hashlib.sha256(b"[]").hexdigest()
    expected = hashlib.sha256(bytes(32) + bytes.fromhex(body) + b"p1\nb1\n42").hexdigest()
    assert chain.link(chain.GENESIS, body, "p1", "b1", 42) == expected


def _links(n: int) -> list[chain.StoredLink]:
    out, prev = [], chain.GENESIS
    for i in range(1, n + 1):
        body = hashlib.sha256(str(i).encode()).hexdigest()
        head = chain.link(prev, body, "p", f"b{i}", i)
        out.append(chain.StoredLink(i, "p", f"b{i}", i, body, prev, head, body))
        prev = head
    return out


def test_check_accepts_an_intact_chain_and_names_the_first_break() -> None:
    links = _links(4)
    report = chain.check(links)
    assert (report.ok, report.length, report.bodies_checked) == (True, 4, 4)
    swapped = [links[0], links[2], links[1], links[3]]
    broken = chain.check(swapped).broken
    assert broken is not None
    assert broken.startswith("batch #3 (p/b3): expected chain index 2")
    pruned = [dataclasses.replace(links[0], recomputed_body=None), *links[1:]]
    assert chain.check(pruned).bodies_checked == 3  # retention: link checked, body not
    edited = [*links[:2], dataclasses.replace(links[2], recomputed_body="00" * 32), links[3]]
    assert "a stored result was edited" in (chain.check(edited).broken or "")


@pytest.mark.parametrize(("message", "field"), [
    ("body: not valid JSON (Expecting value)", "body"),
    ("body: expected `object`, got `array`", "body"),
    ("field 'v': invalid enum value 9", "v"),
    ("field 'streams[3].seq[1]': expected `int`, got `str`", "streams[3].seq[1]"),
    ("field 'streams[0].type_p.dscp': 99 is not within 0..63", "streams[0].type_p.dscp"),
    ("field 'streams[0]': unknown key \"it's\"", "streams[0]"),
    ("field 'streams[1].hops[0][1][2][0]': 0 is not within 1..255", "streams[1].hops[0][1][2][0]"),
])
def test_field_of_names_the_field(message: str, field: str) -> None:
    assert field_of(message) == field


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)))  # JSON cannot carry lone surrogates
_ANSWER = st.dictionaries(_TEXT, st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1)
                          | _TEXT)


@given(_ANSWER)
def test_json_answers_are_what_starlette_renders(answer: dict[str, object]) -> None:
    assert json_bytes(answer) == JSONResponse(answer).body


@given(st.lists(st.tuples(st.sampled_from([b"x-ixmeter-nonce", b"X-Ixmeter-Nonce", b"host",
                                           b"content-length"]),
                          st.binary(max_size=8))))
def test_request_headers_are_starlettes_first_wins(raw: list[tuple[bytes, bytes]]) -> None:
    lowered = [(k.lower(), v) for k, v in raw]  # ASGI servers send lower-case names
    assert request_headers(lowered) == dict(Headers(raw=lowered))
    assert request_headers(raw) == dict(Headers(raw=lowered))


def test_nonce_cache_expires_and_is_bounded() -> None:
    cache = NonceCache(window_s=10, max_entries=3)
    assert cache.check_and_add("p", "n1", 100.0)
    assert not cache.check_and_add("p", "n1", 105.0)
    assert cache.check_and_add("q", "n1", 105.0)  # per probe
    assert cache.check_and_add("p", "n1", 111.0)  # forgotten after the window
    for i in range(5):
        cache.check_and_add("p", f"x{i}", 112.0)
    assert len(cache) == 3


def test_authenticator_reasons() -> None:
    auth = Authenticator(KeyRing({"p": [b"k" * 32, b"o" * 32]}), max_skew_s=30)
    headers = sign(b"o" * 32, "p", "POST", "/v1/batches", b"{}", 1000.0)
    assert auth.authenticate(headers, "POST", "/v1/batches", b"{}", 1010.0) == "p"
    cases = [
        (headers, 1010.0, "replayed_nonce"),
        (sign(b"x" * 32, "p", "POST", "/v1/batches", b"{}", 1000.0), 1000.0, "bad_signature"),
        (sign(b"k" * 32, "p", "POST", "/v1/batches", b"{}", 1000.0), 1031.0, "stale_timestamp"),
        (sign(b"k" * 32, "z", "POST", "/v1/batches", b"{}", 1000.0), 1000.0, "unknown_probe"),
        ({"X-Ixmeter-Probe": "p"}, 1000.0, "missing_headers"),
    ]
    for h, now, reason in cases:
        with pytest.raises(AuthError) as info:
            auth.authenticate(h, "POST", "/v1/batches", b"{}", now)
        assert info.value.reason == reason


def test_keys_files_yaml_and_json(tmp_path: Path) -> None:
    ring = parse_keys({"a": "11" * 16, "b": ["22" * 32, "33" * 32]})
    assert ring.keys_for("b") == [b"\x22" * 32, b"\x33" * 32]
    for name in ("k.yaml", "k.json"):
        save_keys(ring, tmp_path / name)
        assert load_keys(tmp_path / name).to_mapping() == ring.to_mapping()
    with pytest.raises(KeysError, match="'a' is not hex"):
        parse_keys({"a": "zz"})
    with pytest.raises(KeysError, match="need at least 16"):
        parse_keys({"a": "11" * 8})
    with pytest.raises(KeysError, match="cannot read keys file"):
        load_keys(tmp_path / "missing.yaml")


_text = st.text(min_size=1, max_size=12)
_opt_int = st.none() | st.integers(min_value=0, max_value=2**62)


@st.composite
def _results(draw: st.DrawFn) -> Result:
    status = draw(st.sampled_from(Status))
    received = status is Status.RECEIVED
    return Result(
        probe_id=draw(_text), method=draw(st.sampled_from(Method)), src_site=draw(_text),
        src_carrier=draw(_text), dst_site=draw(_text), dst_carrier=draw(_text),
        src_addr=draw(_text), dst_addr=draw(_text),
        type_p=TypeP(draw(st.sampled_from(["icmp", "udp", "tcp"])), draw(st.sampled_from([4, 6])),
                     draw(st.integers(0, 9000)), draw(st.integers(0, 63)),
                     draw(st.none() | st.integers(0, 65535))),
        seq=draw(st.integers(0, 2**40)), sent_at_ns=draw(st.integers(-2**62, 2**62)),
        status=status, tmax_ns=draw(st.integers(1, 2**40)),
        ts_source=draw(st.sampled_from(TimestampSource)),
        rtt_ns=draw(st.integers(0, 2**40)) if received else None,
        fwd_ns=draw(_opt_int) if received else None, bwd_ns=draw(_opt_int) if received else None,
        clock_error_ns=draw(_opt_int), src_synced=draw(st.none() | st.booleans()),
        dst_synced=draw(st.none() | st.booleans()),
        error=draw(st.sampled_from(ErrorKind)) if status is Status.ERROR else None,
        error_detail=draw(st.none() | st.text(max_size=20)), dup=draw(st.integers(0, 5)),
        reply_ttl=draw(st.none() | st.integers(0, 255)), session=draw(st.text(max_size=8)),
        hops=tuple(draw(st.lists(st.builds(Hop, st.integers(1, 64), st.none() | _text, _opt_int),
                                 max_size=3))))


@settings(max_examples=60, deadline=None)
@given(_results())
def test_rows_round_trip_any_result(r: Result) -> None:
    stream, row = stream_of(r), result_row(r)
    assert build_result(stream[1:15], row) == r
    assert json.loads(stream[0]) == list(stream[1:15])
