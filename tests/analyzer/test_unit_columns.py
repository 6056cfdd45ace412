"""Unit tables built from rollup columns (what ``evaluate`` reads from a store) are the tables
``table_from_rollups`` builds from the same rollups, array for array and float for float."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.rollups import columns as rollup_columns
from analyzer.rollups.columns import columns_from_rollups
from analyzer.rollups.model import MinuteRollup
from analyzer.stats import units
from analyzer.stats.units import (
    UnitTable,
    UnitTables,
    table_from_columns,
    table_from_rollups,
)
from analyzer.synthetic.results import results
from tests.oracles.rollup_records import build_rollups


def _rollups() -> list[MinuteRollup]:
    """Two paths over overlapping minutes, with RTT and one-way sketches and losses."""
    a = build_rollups(results("s1", "A", "s2", "B", minutes=200, per_minute=30, one_way=True,
                              spread=0.3, seed=1))
    b = build_rollups(results("s3", "A", "s2", "A", minutes=150, per_minute=20, one_way=True,
                              spread=0.5, loss=0.05, seed=2))
    return a + b


def assert_identical(got: UnitTable, want: UnitTable) -> None:
    for name, value in vars(want).items():
        other = getattr(got, name)
        if isinstance(value, np.ndarray):
            assert other.dtype == value.dtype, name
            assert other.shape == value.shape, name
            assert other.tobytes() == value.tobytes(), name  # bit for bit, NaN and inf too
        else:
            assert type(other) is type(value), name
            assert other == value, name


@pytest.mark.parametrize("which", ["rtt", "fwd", "bwd"])
@pytest.mark.parametrize("unit", [1, 7, 60, 1440])
@pytest.mark.parametrize("small", [False, True])
def test_tables_from_columns_equal_tables_from_rollups(which: str, unit: int, small: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if small:  # rows gathered by index, keys numbered before counting
        monkeypatch.setattr(rollup_columns, "RUN_SLICES", 1)
        monkeypatch.setattr(units, "DENSE_CELLS", 1)
    rollups = _rollups()
    cols = columns_from_rollups(rollups)
    rng = np.random.default_rng(unit)
    for rows in (np.arange(len(rollups)), np.arange(40, 90), np.arange(0),
                 np.sort(rng.choice(len(rollups), 120, replace=False))):
        assert_identical(table_from_columns(cols, rows, which, unit),
                         table_from_rollups([rollups[i] for i in rows], which, unit))


def test_unit_tables_build_each_series_once() -> None:
    rollups = _rollups()
    tables = UnitTables(columns_from_rollups(rollups, ("rtt",)), np.arange(len(rollups)), 60)
    assert list(tables) == ["rtt"]
    assert len(tables) == 1
    assert tables["rtt"] is tables["rtt"]
    assert_identical(tables["rtt"], table_from_rollups(rollups, "rtt", 60))
    with pytest.raises(KeyError):
        tables["fwd"]
