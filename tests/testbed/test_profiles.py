"""Profiles from YAML and schedules."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.profiles import BUILTIN, ProfileError, load_profile, parse_schedule


def test_builtin_by_name() -> None:
    assert load_profile("baseline") is BUILTIN["baseline"]
    assert load_profile("direct").exchange == "ixp"


def test_yaml_profile_with_base(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: lossy\nbase: direct\ninter: {loss: {rate: 0.05, burst: 3}}\n"
                    "overrides:\n  - {src: {sites: [cs-yungu]}, one_way_ms: 2.5}\n")
    prof = load_profile(path)
    assert prof.name == "lossy"
    assert prof.exchange == "ixp"
    assert prof.interconnect_ms == BUILTIN["direct"].interconnect_ms
    assert prof.inter.loss.rate == 0.05
    assert prof.inter.loss.burst == 3
    assert prof.overrides[0].one_way_ms == 2.5


@pytest.mark.parametrize(("text", "match"), [
    ("name: x\nexchange: moon\n", "exchange"),
    ("name: x\ninter: {loss: {rate: 1.5}}\n", "rate"),
    ("- a\n", "mapping"),
    ("name: x\nbase: nope\n", "unknown base"),
])
def test_bad_profile_names_the_field(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=match):
        load_profile(path)


def test_unknown_profile_hint() -> None:
    with pytest.raises(ProfileError, match="baseline, direct"):
        load_profile("no-such-profile")


def test_schedule() -> None:
    assert parse_schedule("60:direct, 0:baseline") == [(0.0, "baseline"), (60.0, "direct")]
    assert parse_schedule("") == []
    for bad in ("direct", "x:direct", "-1:direct", "5:"):
        with pytest.raises(ProfileError, match="schedule"):
            parse_schedule(bad)
