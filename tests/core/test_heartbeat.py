"""The heartbeat codec (ixmeter.core.heartbeat): canonical round trips, and any bytes either decode
or raise HeartbeatError naming a field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ixmeter.core import heartbeat
from ixmeter.core.heartbeat import BY_NAME, COUNTERS, Heartbeat, HeartbeatError, decode, encode

VALUES = st.integers(0, heartbeat.MAX_VALUE)
HEARTBEATS = st.builds(
    Heartbeat, st.none() | st.text(st.characters(codec="utf-8", categories=["L", "N", "P"]),
                                   min_size=1, max_size=heartbeat.MAX_VERSION),
    st.none() | VALUES, st.dictionaries(st.sampled_from(sorted(BY_NAME)), VALUES))
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@given(HEARTBEATS)
def test_round_trip_is_canonical(hb: Heartbeat) -> None:
    body = encode(hb)
    assert decode(body) == hb
    assert body == json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False).encode()


def _refused_field(body: bytes) -> str | None:
    """The field ``decode`` names when it refuses ``body``; None if it decodes."""
    try:
        hb = decode(body)
    except HeartbeatError as exc:
        return exc.field
    assert set(hb.counters) <= set(BY_NAME)
    return None


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_heartbeat_error(body: bytes) -> None:
    assert _refused_field(body) != ""


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(["version", "spool_depth", "counters", "x"]),
                       JSON | st.dictionaries(st.sampled_from(sorted(BY_NAME)), JSON)))
def test_any_json_object_decodes_or_names_its_field(obj: dict[str, object]) -> None:
    field = _refused_field(json.dumps(obj).encode())
    assert field in (None, "body") or field.split(".")[0] in obj


def test_encode_refuses_what_decode_refuses() -> None:
    with pytest.raises(HeartbeatError, match="unknown counter name"):
        encode(Heartbeat(counters={"uptime": 1}))
    with pytest.raises(HeartbeatError, match="spool_depth"):
        encode(Heartbeat(spool_depth=-1))


def test_names_are_unique_and_families_have_one_kind() -> None:
    assert len(BY_NAME) == len(COUNTERS)
    kinds: dict[str, set[str]] = {}
    for c in COUNTERS:
        kinds.setdefault(c.family, set()).add(c.kind)
    assert all(len(k) == 1 for k in kinds.values())


def test_set_aside_counters_and_totals() -> None:
    counters = heartbeat.set_aside_counters({"refused": (2, 150), "too_large": (1, 1)})
    assert set(counters) <= set(BY_NAME)
    assert counters["set_aside_batches.unreadable"] == 0
    assert heartbeat.set_aside_totals(counters) == (3, 151)
    assert heartbeat.set_aside_totals(None) == (0, 0)
