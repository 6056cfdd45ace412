"""Folding rollups: merging tables (a run of batches, after the stored rows of their keys) gives
the rows that merging each key's parts left to right gives (the records oracle's
``merge_parts``), bit for bit; the store's folds give the same rows whenever they run, from
the tables computed at ingest or from the stored raw results, and a reader's in-memory fold
gives the same rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.columns import blocks_of
from analyzer.rollups.batch import batch_tables
from analyzer.rollups.model import MinuteRollup
from analyzer.rollups.rows import (
    ROLLUP_COLUMNS,
    merge_rows,
    rollup_row,
    table_rows,
    tables_from_rows,
)
from analyzer.rollups.tables import (
    TierTables,
    merge_tables,
    records,
    table_keys,
    with_thresholds,
)
from analyzer.store import Query, Store, folds, ingest, open_reader, reads
from analyzer.store.schema import TIERS as STORE_TIERS
from analyzer.store.writes import Writer
from analyzer.synthetic.varied import NS_MIN, T0, make_batches, wide_paths
from ixmeter.core.record import Result
from ixmeter.core.wire import Batch
from tests.analyzer.test_rollup_columns import THRESHOLDS, batch
from tests.oracles.rollup_records import merge_parts
from tests.store.test_store import ALL

TIERS = ("minute", "hour", "day")


def exact(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows with floats as their exact hex form, sorted by key."""
    return sorted((tuple(x.hex() if isinstance(x, float) else x for x in row) for row in rows),
                  key=lambda r: r[:4])


def reference(runs: list[dict[str, list[MinuteRollup]]], tier: str) -> list[tuple[Any, ...]]:
    """Each key's parts (one per batch, in order) merged left to right, as stored rows."""
    parts: dict[tuple[Any, ...], list[MinuteRollup]] = {}
    for rollups in runs:
        for r in rollups[tier]:
            parts.setdefault(r.key, []).append(r)
    return exact([rollup_row(p[0] if len(p) == 1 else merge_parts(p)) for p in parts.values()])


def merged_rows(tables: list[TierTables], tier: str) -> list[tuple[Any, ...]]:
    t, heads = merge_tables([(tt.tiers[tier], tt.heads) for tt in tables])
    return exact(table_rows(t, heads, tables[0].thresholds))


def test_table_rows_are_the_records_rows() -> None:
    for b in make_batches("p1", 3, 1000, paths=wide_paths(30)):
        tables = batch_tables(blocks_of(list(b.results)), THRESHOLDS)
        want = records(tables)
        for tier in TIERS:
            got = table_rows(tables.tiers[tier], tables.heads, tables.thresholds)
            assert exact(got) == exact([rollup_row(r) for r in want[tier]])


def test_a_run_of_batches_merges_as_their_parts_do() -> None:
    """Batches of 10 s over 100 paths: minutes spread over several batches, hours over all."""
    batches = make_batches("p1", 12, 1000, gap_ns=10_000_000, paths=wide_paths(100))
    tables = [batch_tables(blocks_of(list(b.results)), THRESHOLDS) for b in batches]
    runs = [records(t) for t in tables]
    for tier in TIERS:
        assert merged_rows(tables, tier) == reference(runs, tier)


def test_stored_rows_merge_first_then_the_run() -> None:
    """A fold: the stored row of each key (an earlier fold), then the pending batches."""
    batches = make_batches("p1", 9, 500, gap_ns=40_000_000, start_ns=T0 + 37 * NS_MIN)
    tables = [batch_tables(blocks_of(list(b.results)), THRESHOLDS) for b in batches]
    runs = [records(t) for t in tables]
    for tier in TIERS:
        t, heads = merge_tables([(tt.tiers[tier], tt.heads) for tt in tables[:4]])
        stored = table_rows(t, heads, THRESHOLDS)
        *_again, counted = tables_from_rows([(*row, 7) for row in stored])  # with a digest
        assert counted == sorted(THRESHOLDS)
        later = [(tt.tiers[tier], tt.heads) for tt in tables[4:]]
        keys = set(table_keys(later))
        mine = [row for row in stored if tuple(row[:4]) in keys]
        first_table, first_heads, _thresholds = tables_from_rows(mine)
        t2, heads2 = merge_tables([(first_table, first_heads), *later])
        got = {r[:4]: r for r in exact(table_rows(t2, heads2, THRESHOLDS))}
        got.update({r[:4]: r for r in exact(stored) if r[:4] not in keys})
        assert sorted(got.values(), key=lambda r: r[:4]) == reference(runs, tier)


def test_rows_of_other_thresholds_merge_as_their_parts_do() -> None:
    """Rows of different thresholds merge on all of them, a count kept only where every part
    with samples has it (``merge_parts``): one merge, tables throughout."""
    results = list(make_batches("p1", 1, 200)[0].results)
    parts = [batch_tables(blocks_of(results), t)
             for t in (THRESHOLDS, (1_000_000,), (*THRESHOLDS, 5), THRESHOLDS)]
    rows = [r for p in parts for r in table_rows(p.tiers["minute"], p.heads, p.thresholds)]
    runs = [records(p) for p in parts]
    assert exact(merge_rows(rows)) == reference(runs, "minute")
    widest = with_thresholds(parts[0].tiers["minute"], parts[0].thresholds, (*THRESHOLDS, 5))
    assert (widest.below[:, -1][widest.n > 0] == -1).all()
    assert (widest.below[:, -1][widest.n == 0] == 0).all()


def test_keys_of_tables() -> None:
    tables = batch_tables(blocks_of(list(make_batches("p1", 1, 300)[0].results)), THRESHOLDS)
    want = sorted(r.key for r in records(tables)["minute"])
    assert table_keys([(tables.tiers["minute"], tables.heads)]) == want
    assert table_keys([]) == []


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(batch(40), min_size=1, max_size=5))
def test_generated_runs_merge_as_their_parts_do(batches: list[list[Result]]) -> None:
    tables = [batch_tables(blocks_of(b), THRESHOLDS) for b in batches]
    runs = [records(t) for t in tables]
    for tier in TIERS:
        assert merged_rows(tables, tier) == reference(runs, tier)


# -- the store's folds ------------------------------------------------------------------------
def _paths(k: int) -> tuple[tuple[str, str, str, str], ...]:
    """Three paths of their own per scenario, so scenarios in one store share no key."""
    return tuple((f"s{k}", "CT", f"d{j}", "CM") for j in range(3))


def _stored(store: Store, k: int) -> dict[str, list[tuple[Any, ...]]]:
    """The rollup rows of scenario ``k`` as stored, every tier (after folding)."""
    assert isinstance(store, Writer)
    store.fold_pending()
    out = {}
    for tier, (table, _size) in STORE_TIERS.items():
        rows = store.db.execute(f"SELECT {', '.join(ROLLUP_COLUMNS)} FROM {table} "
                                "WHERE src_site = ?", (f"s{k}",)).fetchall()
        out[tier] = exact([tuple(row) for row in rows])
    return out


def _unfolded(store: Store) -> int:
    assert isinstance(store, Writer)
    return len(store.unfolded())


def _expected(batches: list[Batch], thresholds: tuple[int, ...] = THRESHOLDS
              ) -> dict[str, list[tuple[Any, ...]]]:
    runs = [records(batch_tables(blocks_of(list(b.results)), thresholds)) for b in batches]
    return {tier: reference(runs, tier) for tier in TIERS}


@pytest.mark.parametrize("schedule", ["each", "end", "every3"])
def test_folds_at_any_time_store_the_same_rows(store: Store, schedule: str) -> None:
    """Batches of 7.5 s over three paths: every minute spans batches, the hour and day all
    of them. Whenever the folds run, each key's row is its parts merged in chain order."""
    assert isinstance(store, Writer)
    batches = make_batches("p1", 12, 500, gap_ns=15_000_000, paths=_paths(0),
                           start_ns=T0 + 58 * NS_MIN)
    for i, b in enumerate(batches):
        store.write_batch(b, T0)
        if schedule == "each" or (schedule == "every3" and i % 3 == 2):
            store.fold_pending()
    assert _stored(store, 0) == _expected(batches)
    assert _unfolded(store) == 0
    for tier in TIERS:  # one row per key: folds leave no parts behind
        table = STORE_TIERS[tier][0]
        assert store.db.execute(f"SELECT COUNT(*) FROM {table} GROUP BY path_id, method, "
                                "type_p, minute HAVING COUNT(*) > 1").fetchall() == []
    assert store.verify(deep=True).ok


def test_reads_fold_pending_batches_in_memory(store: Store, store_target: str) -> None:
    """Readers see every stored batch without writing: batches not folded yet are folded
    in memory, giving the rows the writer's fold will store."""
    assert isinstance(store, Writer)
    batches = make_batches("p1", 3, 300, paths=_paths(1))
    for b in batches:
        store.write_batch(b, T0)
    reader = open_reader(store_target)
    assert _unfolded(store) == 3
    in_memory = reader.read_rollups(ALL)
    assert sum(r.sent + r.errors for r in in_memory) == 900
    assert _unfolded(store) == 3  # the reader wrote nothing
    for b in make_batches("p2", 2, 300, paths=_paths(1), start_ns=T0 + 10 * NS_MIN):
        store.write_batch(b, T0)
    columns = reader.read_rollup_columns(Query(ALL.start_ns, ALL.end_ns, tier="day"))
    assert int(columns.sent.sum() + columns.errors.sum()) == 1500
    before = reader.read_rollup_columns(Query(ALL.start_ns, ALL.end_ns, tier="hour"))
    minutes = reader.read_rollups(ALL)
    store.fold_pending()
    assert reader.read_rollups(ALL) == minutes
    after = reader.read_rollup_columns(Query(ALL.start_ns, ALL.end_ns, tier="hour"))
    assert before.labels == after.labels
    for name in ("minute", "sent", "lost", "errors"):
        assert (getattr(before, name) == getattr(after, name)).all()
    assert (before.delays["rtt"].sum == after.delays["rtt"].sum).all()
    assert before.delays["rtt"].blobs == after.delays["rtt"].blobs
    reader.close()


def test_ingest_folds_every_fold_at_batches(store: Store,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(store, Writer)
    monkeypatch.setattr(ingest, "FOLD_AT", 4)
    for b in make_batches("p1", 9, 50, paths=_paths(2)):
        store.write_batch(b, T0)
    assert _unfolded(store) == 1
    assert len(store._held) == 1


def test_a_fold_of_several_chunks(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(store, Writer)
    monkeypatch.setattr(folds, "FOLD_CHUNK", 2)
    monkeypatch.setattr(reads, "KEYS_PER_SELECT", 3)
    batches = make_batches("p1", 7, 100, gap_ns=50_000_000, paths=_paths(3))
    for b in batches:
        store.write_batch(b, T0)
    assert store.fold_pending() == 7
    assert _stored(store, 3) == _expected(batches)
    assert store.verify(deep=True).ok


def test_batches_of_other_thresholds_fold_as_parts_merge(make_store: Callable[..., Store]
                                                         ) -> None:
    """A collector restarted with other thresholds: pending blobs of both kinds fold as the
    records of different thresholds merge (a threshold counted only while every part with
    samples counts it), through the one columnar merge."""
    other = (1_000_000, 7_000_000)
    batches = make_batches("p1", 6, 200, gap_ns=100_000_000, paths=_paths(4))
    first = make_store(thresholds_ns=THRESHOLDS)
    for b in batches[:3]:
        first.write_batch(b, T0)
    second = make_store(thresholds_ns=other)
    for b in batches[3:]:
        second.write_batch(b, T0)
    runs = [records(batch_tables(blocks_of(list(b.results)), t)) for b, t in
            zip(batches, [THRESHOLDS] * 3 + [other] * 3, strict=True)]
    assert _stored(second, 4) == {tier: reference(runs, tier) for tier in TIERS}


def test_a_reopened_store_folds_from_the_stored_blocks(make_store: Callable[..., Store]
                                                       ) -> None:
    """Batches written by a store that stopped before folding (or by another collector):
    the fold computes their rollups from their blocks, with the same rows as from memory."""
    batches = make_batches("p1", 8, 400, gap_ns=30_000_000, paths=_paths(5))
    first = make_store()
    for b in batches[:5]:
        first.write_batch(b, T0)
    second = make_store()
    for b in batches[5:]:
        second.write_batch(b, T0)
    assert isinstance(second, Writer)
    assert len(second._held) == 3
    assert _stored(second, 5) == _expected(batches)
    assert _stored(first, 5) == _expected(batches)
    assert isinstance(first, Writer)
    assert first._held == {}  # folded by the other store: forgotten, not folded again
