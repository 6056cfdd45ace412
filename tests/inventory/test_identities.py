"""The identities defined once in the inventory: a target's threshold, a path's id, a pair's
key, a verdict group, and the time zone every target and rule carries."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from inventory import PathEnds, Topology, default_inventory, load
from inventory.schema import Comparison, Inventory, PathScope
from inventory.topology import group_key, pair_key, source_carrier, split_pair
from ixmeter.core.record import parse_path_id, path_id


def test_threshold_of_each_comparison_kind() -> None:
    rel = Comparison(kind="relative", reduction=0.8)
    assert (rel.threshold, rel.threshold_unit) == (pytest.approx(0.2), "ratio")
    ref = Comparison(kind="reference", reference=PathScope(), at_most_ratio=1.25)
    assert (ref.threshold, ref.threshold_unit) == (1.25, "ratio")
    delay = Comparison(kind="absolute", below_ms=30)
    assert (delay.threshold, delay.threshold_unit) == (30, "ms")
    loss = Comparison(kind="absolute", below_ratio=0.01)
    assert (loss.threshold, loss.threshold_unit) == (0.01, "ratio")


def test_path_id_formats_and_parses_back() -> None:
    ends = PathEnds("cs-ixp", "CT", "zz-dc1", "CM")
    assert ends.id == path_id("cs-ixp", "CT", "zz-dc1", "CM") == "cs-ixp/CT>zz-dc1/CM"
    assert PathEnds.parse(ends.id) == ends
    assert parse_path_id(ends.id) == ("cs-ixp", "CT", "zz-dc1", "CM")
    for bad in ("cs-ixp/CT", "a/B>c", "a/B>c/D>e/F", "a//B>c/D", "", "a/B/c>d/E"):
        with pytest.raises(ValueError, match="not a path id"):
            PathEnds.parse(bad)


def test_pair_keys_and_groups() -> None:
    assert pair_key("CT", "CM") == "CT>CM" == PathEnds("a", "CT", "b", "CM").carrier_pair
    assert split_pair("changsha>zhuzhou") == ("changsha", "zhuzhou")
    with pytest.raises(ValueError, match="not a pair key"):
        split_pair("CT")
    ends = PathEnds("s1", "A", "s3", "B")
    city = {"s1": "c1"}.get
    assert [group_key(ends, per, city) for per in ("path", "carrier_pair", "city_pair",
                                                   "scope")] == \
        ["s1/A>s3/B", "A>B", "c1>s3", "all"]
    with pytest.raises(ValueError, match="unknown grouping"):
        group_key(ends, "province", city)
    assert source_carrier("s1/A>s3/B", "path") == source_carrier("A>B", "carrier_pair") == "A"
    assert source_carrier("c1>c2", "city_pair") is None


def _seed() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(default_inventory().read_text(encoding="utf-8"))
    return data


def test_targets_and_rules_get_their_provinces_zone() -> None:
    """Policy is data: no zone is written in code, an inventory's targets and rules count
    local time in their province's zone unless they name their own."""
    data = _seed()
    data["provinces"] = [{**p, "timezone": tz} for p, tz in
                         zip(data["provinces"], ("America/Sao_Paulo", "Asia/Kolkata",
                                                 "Europe/Berlin"), strict=True)]
    for rule in data["fault_rules"]:
        rule["calendar"].pop("timezone", None)
    data["policy_targets"][0]["scope"].pop("within_province")
    data["policy_targets"][1]["aggregation"] = {"timezone": "UTC"}
    data["policy_targets"][2]["scope"]["within_province"] = "HB"
    inv = Inventory.model_validate(data)
    assert inv.timezone == "America/Sao_Paulo"  # the first province's
    zones = [t.aggregation.timezone for t in inv.policy_targets]
    assert zones[:3] == ["America/Sao_Paulo", "UTC", "Asia/Kolkata"]
    assert {t.aggregation.timezone for t in inv.policy_targets[3:]} == {"America/Sao_Paulo"}
    assert {r.calendar.timezone for r in inv.fault_rules} == {"America/Sao_Paulo"}
    assert load(default_inventory()).timezone == "Asia/Shanghai"  # the seed says so


def test_a_province_names_its_zone() -> None:
    data = _seed()
    data["provinces"][0] = {k: v for k, v in data["provinces"][0].items() if k != "timezone"}
    with pytest.raises(ValidationError, match=r"provinces\.0\.timezone"):
        Inventory.model_validate(data)
    data["provinces"][0]["timezone"] = "Asia/Changsha"
    with pytest.raises(ValidationError, match="unknown time zone 'Asia/Changsha'"):
        Inventory.model_validate(data)


def test_topology_groups_with_its_cities() -> None:
    topo = Topology(load(default_inventory()))
    ends = PathEnds("cs-ixp", "CT", "zz-dc1", "CM")
    city = topo.city_id
    assert topo.group_of(ends, "city_pair") == group_key(ends, "city_pair", city)
