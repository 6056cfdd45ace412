"""Target-group rows (analyzer.groups): evaluating from them gives the verdicts, figures and
exclusions of evaluating from the paths; they are evidence, and a change of the path rows they
merge drops them."""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from analyzer import groups
from analyzer.baselines import parse_window
from analyzer.evaluate import Params, evaluate
from analyzer.report.jsonout import row_to_dict
from analyzer.rollups.rows import ROLLUP_COLUMNS
from analyzer.store import open_reader, open_store
from analyzer.store.writes import Writer
from analyzer.synthetic.results import T0, results
from inventory.loader import load
from ixmeter.core.record import ErrorKind, Status
from ixmeter.core.wire import Batch
from tests.analyzer.test_evaluate import BASELINE, CURRENT, DAY, INV, _fill
from tests.store.pgcluster import PgCluster

FUTURE = T0 + 400 * DAY


def _evaluation(db: Path | str, tier: str) -> str:
    store = open_reader(db)
    ev = evaluate(store, load(INV), Params(parse_window(CURRENT), parse_window(BASELINE),
                                           seed=5, tier=tier))
    store.close()
    return json.dumps({"rows": [row_to_dict(r) for r in ev.rows], "ex": ev.exclusions,
                       "notes": ev.notes}, sort_keys=True)


def _build(db: Path | str, now_ns: int = FUTURE) -> int:
    store = open_store(db)
    assert isinstance(store, Writer)
    n = groups.build(store, load(INV), now_ns=now_ns)
    store.close()
    return n


def _errors_and_strangers(store: Writer) -> None:
    """Rows the analysis notes as exclusions: error records, and a site not in the inventory."""
    rs = list(results("s1", "A", "s3", "B", start_ns=T0 + DAY + 5 * 3600 * 10**9, minutes=5,
                      seed=77))
    bad = [replace(r, status=Status.ERROR, rtt_ns=None, error=ErrorKind.SEND_ERROR)
           if i % 7 == 0 else r for i, r in enumerate(rs)]
    store.write_batch(Batch(rs[0].probe_id, "errors", tuple(bad)), 0)
    far = list(results("s1", "A", "nowhere", "B", start_ns=T0 + DAY + 3600 * 10**9, minutes=5,
                       seed=78))
    store.write_batch(Batch(far[0].probe_id, "stranger", tuple(far)), 0)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("groups") / "store.db"
    _fill(path)
    store = open_store(path)
    assert isinstance(store, Writer)
    _errors_and_strangers(store)
    store.close()
    return path


@pytest.mark.parametrize("tier", ["hour", "day"])
def test_groups_give_the_paths_evaluation(filled: Path, tmp_path: Path, tier: str) -> None:
    db = tmp_path / "g.db"
    shutil.copy(filled, db)
    want = _evaluation(db, tier)
    assert _build(db) > 0
    assert _evaluation(db, tier) == want
    assert _build(db) == 0  # every unit built: nothing to do
    assert open_reader(db).verify().ok
    reasons = {e["reason"] for e in json.loads(want)["ex"]}
    assert reasons == {"error records (not samples)", "site not in the inventory"}
    # the grouped targets read group rows, not paths: without the path rows of the grouped
    # targets' method and windows, their verdicts are unchanged
    con = sqlite3.connect(db)
    con.execute(f"DELETE FROM rollups_{tier} WHERE method = 'icmp'")
    con.commit()
    con.close()
    grouped = {t for g in groups.groupings(load(INV)) for t in g.targets}
    def mine(doc: str) -> list[object]:
        return [r for r in json.loads(doc)["rows"] if r["target"] in grouped]
    assert mine(_evaluation(db, tier)) == mine(want)


def test_partly_built_and_dropped_units_read_paths(filled: Path, tmp_path: Path) -> None:
    """Units built for no grouping yet, and units a later batch changed, are read from the
    paths; a reader folds a writer's unfolded batch in memory and reads that unit's paths."""
    db = tmp_path / "g.db"
    shutil.copy(filled, db)
    _build(db, now_ns=T0 + DAY + DAY // 2)  # only the units ended by then
    assert _evaluation(db, "hour") == _evaluation_from_paths(db, tmp_path, "hour")
    _build(db)
    store = open_store(db)
    assert isinstance(store, Writer)
    late = list(results("s1", "A", "s3", "B", start_ns=T0 + DAY + 13 * 3600 * 10**9,
                        minutes=3, median_ms=50, seed=99))
    store.write_batch(Batch(late[0].probe_id, "late", tuple(late)), 0)  # held, not folded
    for tier in ("hour", "day"):
        assert _evaluation(db, tier) == _evaluation_from_paths(db, tmp_path, tier)
    store.close()  # folds: the unit's group rows are dropped with it
    assert _evaluation(db, "day") == _evaluation_from_paths(db, tmp_path, "day")
    assert open_reader(db).verify().ok


def _evaluation_from_paths(db: Path, tmp_path: Path, tier: str) -> str:
    """The evaluation of a copy without any group row."""
    copy = tmp_path / "paths.db"
    copy.unlink(missing_ok=True)
    con = sqlite3.connect(copy)
    with sqlite3.connect(db) as src:  # the backup API: committed pages still in the WAL too
        src.backup(con)
    con.execute("DELETE FROM groups_hour")
    con.execute("DELETE FROM groups_day")
    con.commit()
    con.close()
    return _evaluation(copy, tier)


def test_an_edited_group_row_is_named_by_verify(filled: Path, tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    shutil.copy(filled, db)
    _build(db)
    con = sqlite3.connect(db)
    key = con.execute("SELECT path_id, minute FROM groups_day WHERE rtt_n > 0 LIMIT 1").fetchone()
    con.execute("UPDATE groups_day SET lost = lost + 5 WHERE path_id = ? AND minute = ?", key)
    con.commit()
    con.close()
    report = open_reader(db).verify()
    assert not report.ok
    assert any("groups_day row" in p and key[0] in p for p in report.findings)


def test_an_inventory_edit_is_another_grouping() -> None:
    inv = load(INV)
    before = {g.id for g in groups.groupings(inv)}
    moved = inv.model_copy(update={"sites": [s.model_copy(update={"city": "c2"})
                                             if s.id == "s2" else s for s in inv.sites]})
    assert before.isdisjoint(g.id for g in groups.groupings(moved))
    assert {t for g in groups.groupings(inv) for t in g.targets} >= {"latency", "loss"}


def test_verify_deep_rebuilds_group_rows(filled: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Intact, ``verify --deep --inventory`` compares every group row with the merge of its
    paths' rows; rows a lying writer built (digests and states consistent, a figure wrong)
    only that rebuild finds, and it names them."""
    from ixmeter.cli import main

    db = tmp_path / "g.db"
    shutil.copy(filled, db)
    _build(db)
    args = ["verify", "--db", str(db), "--deep", "--inventory", str(INV)]
    assert main(args) == 0
    assert "target-group rows equal the merge of their paths' rows" in capsys.readouterr().out

    liar = tmp_path / "liar.db"
    shutil.copy(filled, liar)
    honest = groups.group_rows
    lost = ROLLUP_COLUMNS.index("lost")
    monkeypatch.setattr(groups, "group_rows", lambda m, rows, units: [
        (*r[:lost], r[lost] + 1, *r[lost + 1:]) if r[0].endswith(":A>B") else r
        for r in honest(m, rows, units)])
    _build(liar)
    monkeypatch.setattr(groups, "group_rows", honest)
    assert open_reader(liar).verify().ok  # consistent with the chain: only a rebuild tells
    assert main(["verify", "--db", str(liar), "--deep", "--inventory", str(INV)]) == 1
    out = capsys.readouterr().out
    assert "not the merge of its paths' stored rows" in out
    assert ":A>B" in out


@pytest.mark.postgres
def test_groups_on_postgresql(pg_cluster: PgCluster) -> None:
    """The same on a real PostgreSQL: its collation does not change the merge order."""
    url = pg_cluster.new_database()
    _fill(url)
    want = {tier: _evaluation(url, tier) for tier in ("hour", "day")}
    assert _build(url) > 0
    assert {tier: _evaluation(url, tier) for tier in want} == want
    reader = open_reader(url)
    assert reader.verify().ok
    assert groups.check(reader, load(INV))[1] == []
    reader.close()


def test_collector_compact_builds_groups(filled: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from ixmeter.cli import main

    db = tmp_path / "g.db"
    shutil.copy(filled, db)
    assert main(["collector", "compact", "--db", str(db), "--inventory", str(INV)]) == 0
    assert "target groups:" in capsys.readouterr().out
    reader = open_reader(db)
    assert reader.db.execute("SELECT count(*) FROM groups_day").fetchone()[0] > 0
    reader.close()
