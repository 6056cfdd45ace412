"""Declared baselines keep a value per scope and say which scope each verdict's value came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.baselines import Declared, ResolvedBaseline, declared_for, parse_window
from analyzer.evaluate import Params, evaluate
from analyzer.store import open_store
from inventory.loader import load
from inventory.schema import PathScope, Selector
from inventory.topology import PathEnds, Topology
from tests.analyzer.test_evaluate import CURRENT, INV, _fill

PER_SCOPE = """values:
      - {statistic: rtt_median, value: 40.0, unit: ms, scope: {sources: {carriers: [A]}}}
      - {statistic: rtt_median, value: 90.0, unit: ms, scope: {sources: {carriers: [B]}}}
      - {statistic: rtt_median, value: 10.0, unit: ms}"""


@pytest.fixture(scope="module")
def per_scope(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("declared")
    text = INV.read_text().replace(
        "values: [{statistic: rtt_median, value: 40.0, unit: ms}]", PER_SCOPE)
    text = text.replace("    per: scope\n    baseline: declared",
                        "    per: carrier_pair\n    baseline: declared")
    inv = tmp / "inv.yaml"
    inv.write_text(text)
    db = tmp / "store.db"
    _fill(db)
    return inv, db


def test_each_group_takes_the_value_of_its_scope(per_scope: tuple[Path, Path]) -> None:
    inv_path, db = per_scope
    store = open_store(db)
    try:
        ev = evaluate(store, load(inv_path), Params(parse_window(CURRENT), seed=3),
                      targets=["declared-latency"])
    finally:
        store.close()
    rows = {(r.scope, r.type_p): r for r in ev.rows}
    ab, ba = rows[("A>B", "icmp/v4/64/dscp0")], rows[("B>A", "icmp/v4/64/dscp0")]
    assert ab.result.baseline_value == pytest.approx(40e6)
    assert ba.result.baseline_value == pytest.approx(90e6)
    assert ab.result.details["declared_scope"] == '{"sources": {"carriers": ["A"]}}'
    assert ba.result.details["declared_scope"] == '{"sources": {"carriers": ["B"]}}'


def test_declared_for_rules() -> None:
    topo = Topology(load(INV))
    a = Declared("rtt_median", 40.0, "ms", PathScope(sources=Selector(carriers=["A"])))
    b = Declared("rtt_median", 90.0, "ms", PathScope(sources=Selector(carriers=["B"])))
    every = Declared("rtt_median", 10.0, "ms", PathScope())
    res = ResolvedBaseline("declared", "doc", declared=(a, b, every))
    ab, ba = PathEnds("s1", "A", "s3", "B"), PathEnds("s1", "B", "s3", "A")
    assert declared_for(res, "rtt_median", [ab], topo.in_scope) == (a, "")
    mixed, _ = declared_for(res, "rtt_median", [ab, ba], topo.in_scope)
    assert mixed == every
    only = ResolvedBaseline("declared", "doc", declared=(a, b))
    none, why = declared_for(only, "rtt_median", [ab, ba], topo.in_scope)
    assert none is None
    assert "covers all paths" in why
    assert declared_for(res, "loss_ratio", [ab], topo.in_scope)[1].startswith(
        "the declared baseline gives no value")
    assert every.scope_label == "all paths"
