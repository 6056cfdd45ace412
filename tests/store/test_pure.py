"""Pure pieces of the store and collector: chain links, error fields, nonces, keys files."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from analyzer.collector.app import field_of, json_bytes, request_headers
from analyzer.collector.auth import Authenticator, NonceCache
from analyzer.collector.keys import KeyRing, KeysError, load_keys, parse_keys, save_keys
from analyzer.store import chain
from ixmeter.core.wire import AuthError, sign


def test_head_is_the_documented_formula() -> None:
    body = hashlib.sha256(b"[]").hexdigest()
    expected = hashlib.sha256(bytes(32) + bytes.fromhex(body) + b"batch\np1\nb1\n42"
                              ).hexdigest()
    assert chain.head_of(chain.GENESIS, body, "batch", "p1", "b1", 42) == expected


def _links(n: int) -> list[chain.Link]:
    out, prev = [], chain.GENESIS
    for i in range(1, n + 1):
        body = chain.batch_body(i, i, i, "1000000", "00" * 32)
        head = chain.head_of(prev, body, chain.BATCH, "p", f"b{i}", i)
        out.append(chain.Link(i, chain.BATCH, i, "p", f"b{i}", body, body, prev, head))
        prev = head
    return out


def test_walk_accepts_an_intact_chain_and_names_the_first_break() -> None:
    links = _links(4)
    walked = chain.walk(links, find_head=links[1].head)
    assert (walked.broken, walked.length, walked.head, walked.found_at) == (
        None, 4, links[3].head, 2)
    swapped = [links[0], links[2], links[1], links[3]]
    broken = chain.walk(swapped).broken
    assert broken is not None
    assert broken.startswith("link #3 (batch p/b3): expected chain index 2")
    edited = [*links[:2], dataclasses.replace(links[2], body="00" * 32), links[3]]
    assert "do not match the link's body digest (edited)" in (chain.walk(edited).broken or "")
    fold = chain.detail_of(chain.FOLD, {"batches": [[1, 3]], "through": 4}, {"rollups": "ab"})
    assert fold == '{"batches":[[1,3]],"kind":"fold","state":{"rollups":"ab"},"through":4}'


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
