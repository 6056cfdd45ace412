"""Clock domains: a one-way target judged from unsynchronised clocks that read one clock, with
the domain's relative bound in place of each end's absolute one (analyzer.clockdomain)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from analyzer.baselines import parse_window
from analyzer.evaluate import Params, evaluate
from analyzer.stats.verdicts import Verdict
from analyzer.store import open_reader, open_store
from analyzer.synthetic.results import STAMP_V4, results
from inventory.loader import InventoryError, load
from ixmeter.core.record import Method
from ixmeter.core.wire import Batch

INV = Path(__file__).parent / "data" / "mini.yaml"
CURRENT = "2026-01-01T00:00:00Z/2026-01-01T01:00:00Z"
UNSYNCED: dict[str, Any] = {"minutes": 60, "per_minute": 10, "spread": 0.05,
                            "method": Method.STAMP, "type_p": STAMP_V4, "one_way": True,
                            "clock_error_ns": 16_000_000_000, "synced": False}


def _inventory(tmp_path: Path, domains: list[dict[str, Any]]) -> Path:
    data = yaml.safe_load(INV.read_text(encoding="utf-8"))
    data["clock_domains"] = domains
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One-way delays of 0.8 ms each way (RTT_net 1.6 ms: the clock-free bounds cannot decide
    1 ms), clocks unsynchronised with a 16 s bound, on two same-city paths."""
    path = tmp_path_factory.mktemp("domains") / "store.db"
    store = open_store(path)
    for i, (src, sc, dst, dc) in enumerate((("s1", "A", "s2", "B"), ("s1", "B", "s2", "A"))):
        rs = tuple(results(src, sc, dst, dc, median_ms=1.6, seed=i + 1, **UNSYNCED))
        store.write_batch(Batch(rs[0].probe_id, f"owd-{i}", rs), 0)
    store.close()
    return path


def _owd(db: Path, inv: Path) -> Any:
    store = open_reader(db)
    try:
        ev = evaluate(store, load(inv), Params(current=parse_window(CURRENT)),
                      targets=["owd-same-city"])
    finally:
        store.close()
    (row,) = ev.rows
    return row


def test_without_a_domain_unsynchronised_clocks_leave_it_not_evaluable(db: Path,
                                                                      tmp_path: Path) -> None:
    row = _owd(db, _inventory(tmp_path, []))
    assert row.decision.verdict is Verdict.NOT_EVALUABLE
    assert "clocks unsynchronised" in row.decision.reason


def test_a_domain_bound_replaces_the_absolute_one(db: Path, tmp_path: Path) -> None:
    inv = _inventory(tmp_path, [{"id": "one-clock", "probes": ["s1-a", "s1-b", "s2-a", "s2-b"],
                                 "relative_error_ms": 0.01, "basis": "one kernel clock"}])
    row = _owd(db, inv)
    assert row.decision.verdict is Verdict.PASS
    assert row.result.clock_error == pytest.approx(10_000)  # 0.01 ms, in ns
    assert "clock domain one-clock (relative bound 0.01 ms)" in row.decision.reason
    assert row.result.details["clock_domains"] == ["one-clock"]


def test_a_path_outside_the_domain_keeps_its_own_gate(db: Path, tmp_path: Path) -> None:
    """Only s1/A>s2/B has both ends in the domain; s1/B>s2/A's unsynchronised samples still
    gate the group (the group pools both paths)."""
    inv = _inventory(tmp_path, [{"id": "half", "probes": ["s1-a", "s2-b"],
                                 "relative_error_ms": 0.01, "basis": "one PTP grandmaster"}])
    row = _owd(db, inv)
    assert row.decision.verdict is Verdict.NOT_EVALUABLE
    assert "clocks unsynchronised for 600 one-way samples" in row.decision.reason


def test_a_domain_naming_an_unknown_or_shared_probe_is_refused(tmp_path: Path) -> None:
    inv = _inventory(tmp_path, [
        {"id": "a", "probes": ["s1-a", "nope"], "relative_error_ms": 0.01, "basis": "x"},
        {"id": "b", "probes": ["s1-a", "s2-a"], "relative_error_ms": 0.01, "basis": "x"}])
    with pytest.raises(InventoryError) as err:
        load(inv)
    text = str(err.value)
    assert "unknown probe 'nope'" in text
    assert "already in clock domain 'a'" in text
