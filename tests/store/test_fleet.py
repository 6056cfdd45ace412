"""Several writers on one store (collectors on one PostgreSQL; SQLite alike): each folds the
batches it holds, a batch another live writer holds is never decoded from raw, a crashed
writer's batches are folded from raw once their grace is over, and the rollups are exactly one
writer's (same rows, same digests), every batch folded once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from analyzer.store import Store, folds, ingest, open_store, verify
from analyzer.store.base import Report
from analyzer.store.foldset import Unfolded, choose, ids_of_ranges, ranges_of, watermark
from analyzer.store.schema import EVIDENCE_TABLES, STORED_ROLLUP_COLUMNS
from analyzer.store.writes import Writer
from analyzer.synthetic.varied import make_batches
from ixmeter.core.wire import Batch
from tests.store.conftest import StoreFactory


def _paths(name: str) -> tuple[tuple[str, str, str, str], ...]:
    return tuple((name, "CT", f"d{j}", "CM") for j in range(2))


def _tables(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    assert isinstance(store, Writer)
    out = {}
    for table in EVIDENCE_TABLES:
        rows = store.db.execute(f"SELECT {', '.join(STORED_ROLLUP_COLUMNS)} FROM {table}"
                                ).fetchall()
        out[table] = sorted((tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                             for r in rows), key=lambda r: r[:4])
    return out


def _writer(store: Store) -> Writer:
    assert isinstance(store, Writer)
    return store


def test_writers_fold_their_own_batches_and_a_crashed_ones_after_its_grace(
        make_store: StoreFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe p1 uploads to A, p2 to B, p3 to A then B (fail-over mid-way, in one minute),
    then B crashes and p2 fails over to A."""
    a, b = _writer(make_store()), _writer(make_store())
    p1, p2, p3 = (make_batches(p, 8, 100, seed=k, paths=_paths(p))
                  for k, p in enumerate(("p1", "p2", "p3")))
    order: list[Batch] = []

    def send(writer: Writer, batch: Batch) -> None:
        writer.write_batch(batch, time.time_ns())  # received now: within the grace
        order.append(batch)

    for k in range(4):
        send(a, p1[k])
        send(b, p2[k])
        send(a, p3[k])
    for k in range(4, 6):
        send(a, p1[k])
        send(b, p2[k])
        send(b, p3[k])  # p3 now uploads to B; A still holds p3's first batches
    assert b.fold_pending() == 6  # B's p2 batches; its p3 batches wait for A's earlier ones
    assert len(b._held) == 2
    assert a.fold_pending() == 10
    assert b.fold_pending() == 2  # now in chain order after A's
    assert a.fold_work == {"memory": 10, "raw": 0}
    assert b.fold_work == {"memory": 8, "raw": 0}

    send(b, p2[6])
    send(b, p3[6])
    b._held.clear()  # B crashes: what it held is lost, nothing folded, its connection gone
    b.db.close()
    send(a, p1[6])
    send(a, p2[7])  # p2 and p3 fail over to A
    send(a, p3[7])
    send(a, p1[7])
    assert a.fold_pending() == 2  # p1's; p2's and p3's wait behind B's unfolded batches
    assert a.fold_work == {"memory": 12, "raw": 0}  # nothing of B's decoded within the grace
    monkeypatch.setattr(folds, "GRACE_S", 0.0)  # the grace is over
    assert a.fold_pending() == 4
    assert a.fold_work == {"memory": 14, "raw": 2}  # exactly B's two orphans from raw
    assert a.unfolded() == []

    report = a.verify(deep=True)
    assert report.ok, report.findings
    assert (report.batches, report.unfolded) == (len(order), 0)
    results = a.db.execute("SELECT SUM(n) FROM links WHERE kind = 'batch'").fetchone()[0]
    assert results == 100 * len(order)

    single = _writer(open_store(str(tmp_path / "single.db")))
    try:
        for batch in order:
            single.write_batch(batch, time.time_ns())
        single.fold_pending()
        assert _tables(a) == _tables(single)  # same rows, same digests
    finally:
        single.close()


def test_compact_folds_what_no_writer_holds_at_once(make_store: StoreFactory) -> None:
    a, b = _writer(make_store()), _writer(make_store())
    batches = make_batches("p1", 3, 50, paths=_paths("p1"))
    for batch in batches:
        a.write_batch(batch, time.time_ns())
    a._held.clear()  # as after a crash
    assert b.fold_pending() == 0  # young batches of another writer: left to it
    assert b.fold_pending(everything=True) == 3
    assert b.fold_work == {"memory": 0, "raw": 3}
    assert a.fold_pending() == 0
    assert b.verify(deep=True).ok


def _u(bid: int) -> Unfolded:
    return Unfolded(bid, (), 0, 0, 0)


def test_choose_folds_no_batch_past_an_earlier_one_left_out_that_may_share_a_key() -> None:
    spans = {1: ({"x"}, 5, 5), 2: ({"y"}, 5, 5), 3: ({"x"}, 6, 6), 4: ({"x", "y"}, 5, 5),
             5: ({"z"}, 5, 5)}
    held = {2, 3, 4, 5}
    chosen = choose([_u(i) for i in range(1, 6)], lambda u: u.bid in held,
                    lambda u: (frozenset(spans[u.bid][0]), *spans[u.bid][1:]), 10)
    assert [u.bid for u in chosen] == [2, 3, 5]  # 4 shares path x and day 5 with 1
    assert watermark([_u(i) for i in range(1, 6)], chosen, 9) == 0
    assert ranges_of([5, 2, 3, 9]) == [[2, 3], [5, 5], [9, 9]]
    assert ids_of_ranges([[2, 3], [5, 5]]) == [2, 3, 5]
    with pytest.raises(ValueError, match="malformed"):
        ids_of_ranges([[3, 2]])


def _link(idx: int, kind: str, detail: str | None = None) -> verify._Stored:
    return verify._Stored(idx, kind, 0, None, None, None, None, None, None, None, detail,
                          "", "", "")


def test_verify_names_a_batch_folded_twice_a_stranger_and_a_false_watermark() -> None:
    fold = '{{"batches":{},"through":{}}}'.format
    links = [_link(1, "batch"), _link(2, "batch"), _link(3, "fold", fold("[[2,2]]", 0)),
             _link(4, "batch"), _link(5, "fold", fold("[[1,2]]", 3)),
             _link(6, "fold", fold("[[3,4]]", 6)), _link(7, "fold", fold("[[9,9]]", 5))]
    report = Report()
    assert verify._check_folds(links, report) == {1, 2, 3, 4}
    assert report.findings == [
        "link #5 (fold): folds batch link #2 a second time",
        "link #6 (fold): names link #3, which is not an earlier batch",
        "link #6 (fold): claims every batch through #6 folded, but the batches are folded "
        "through #5",
        "link #7 (fold): its detail does not say which batches it folded (a fold link names a "
        "malformed range of batches: [9, 9])"]


def test_batches_waiting_behind_another_writers_do_not_fold_at_every_batch(
        make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "FOLD_AT", 2)
    a, b = _writer(make_store()), _writer(make_store())
    batches = make_batches("p1", 7, 50, paths=_paths("p1"))
    a.write_batch(batches[0], time.time_ns())  # held by A, young: B's later ones wait
    calls = []
    fold = b.fold_pending
    monkeypatch.setattr(b, "fold_pending", lambda: calls.append(fold()))
    for batch in batches[1:]:
        b.write_batch(batch, time.time_ns())
    assert calls == [0, 0, 0]  # at 2, 4 and 6 held, not at every batch past 2
    assert a.fold_pending() == 1
    assert fold() == 6
