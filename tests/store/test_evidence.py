"""The chain covers every row a verdict reads: any edit of a minute, hour or day rollup is caught
by ``verify`` and named; writers refuse to build on edited evidence; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from analyzer.rollups.rows import ROLLUP_COLUMNS, ROLLUP_KEY
from analyzer.store import Query, Store
from analyzer.store.evidence import EvidenceError, LtHash, encode_row, row_digest
from analyzer.store.folding import key_text
from analyzer.store.schema import STORED_ROLLUP_COLUMNS, TIERS
from analyzer.store.writes import Writer
from analyzer.synthetic.varied import NS_MIN, T0, make_batches

ALL = Query(0, 2**62)
_KEY = " AND ".join(f"{c} = ?" for c in ROLLUP_KEY)


CUT = T0 + 59 * NS_MIN + 30 * 10**9


# the path tiers (the target-group tables go through the same checks: test_groups.py)
PATH_TIERS = [table for table, _size in TIERS.values()]


def _filled(store: Store) -> Writer:
    """Two probes over two minutes, two hours (and days: T0 is at 20:26 UTC... the minutes
    59 and 60 after it), folded; the first 30 s pruned: a fold and a prune link."""
    assert isinstance(store, Writer)
    for probe in ("p1", "p2"):
        for b in make_batches(probe, 4, 300, start_ns=T0 + 59 * NS_MIN, gap_ns=100_000_000):
            store.write_batch(b, T0)
    store.fold_pending()
    store.prune(CUT)
    assert store.verify().ok
    return store


def _changed(value: Any) -> Any:
    """Another value of the same stored type."""
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.5 + 1.0
    if isinstance(value, str):
        return value + "x"
    data = bytes(value)
    return data[:-1] + bytes([data[-1] ^ 1]) if data else b"\x01"


def _row(store: Writer, table: str) -> tuple[Any, ...]:
    """A row with samples of every delay series (its figures matter)."""
    return tuple(store.db.execute(
        f"SELECT {', '.join(STORED_ROLLUP_COLUMNS)} FROM {table} WHERE fwd_n > 0 "
        "ORDER BY minute DESC, path_id, method, type_p LIMIT 1").fetchone())


def _set(store: Writer, table: str, row: tuple[Any, ...], column: str, value: Any) -> None:
    store.db.execute(f"UPDATE {table} SET {column} = ? WHERE {_KEY}", (value, *row[:4]))


def _columns() -> Iterator[str]:
    yield from ROLLUP_COLUMNS
    yield "digest"


@pytest.mark.parametrize("table", PATH_TIERS)
def test_every_single_column_edit_is_caught_and_named(store: Store, table: str) -> None:
    writer = _filled(store)
    row = _row(writer, table)
    for i, column in enumerate(_columns()):
        new = _changed(row[i])
        _set(writer, table, row, column, new)
        edited = list(row)
        edited[i] = new
        report = writer.verify()
        assert not report.ok, column
        named = f"{table} row {key_text(edited)}: the stored figures do not match"
        assert any(f.startswith(named) for f in report.findings), (column, report.findings)
        if column != "digest":  # a digest edited alone leaves the figures as they were
            assert any(f.startswith(f"{table}: its rows are not") for f in report.findings)
        if column in ROLLUP_KEY:  # the row moved: put it back under its key
            writer.db.execute(f"UPDATE {table} SET {column} = ? WHERE {_KEY}",
                              (row[i], *edited[:4]))
        else:
            _set(writer, table, row, column, row[i])
    assert writer.verify().ok


@pytest.mark.parametrize("table", PATH_TIERS)
def test_edits_with_a_recomputed_digest_name_the_table(store: Store, table: str) -> None:
    """An attacker who recomputes the row's digest: the table's LtHash no longer matches what
    the chain committed to."""
    writer = _filled(store)
    row = _row(writer, table)
    for column in ("lost", "rtt_sum", "rtt_sketch", "minute", "rtt_below"):
        i = STORED_ROLLUP_COLUMNS.index(column)
        edited = list(row)
        edited[i] = _changed(row[i])
        writer.db.execute(f"UPDATE {table} SET {column} = ?, digest = ? WHERE {_KEY}",
                          (edited[i], row_digest(table, edited[:-1]), *row[:4]))
        report = writer.verify()
        assert report.findings == [
            f"{table}: its rows are not the rows the chain's last fold, prune or load link "
            "committed to (a row was added, removed, or edited with a recomputed digest)"], column
        writer.db.execute(f"UPDATE {table} SET {column} = ?, digest = ? WHERE {_KEY}",
                          (row[i], row[-1], *edited[:4]))
    assert writer.verify().ok


@pytest.mark.parametrize("table", PATH_TIERS)
def test_rows_added_or_removed_are_caught(store: Store, table: str) -> None:
    writer = _filled(store)
    row = _row(writer, table)
    writer.db.execute(f"DELETE FROM {table} WHERE {_KEY}", row[:4])
    assert writer.verify().findings[0].startswith(f"{table}: its rows are not")
    forged = (*row[:3], row[3] + 10_000, *row[4:-1])
    writer.db.execute(f"INSERT INTO {table} ({', '.join(STORED_ROLLUP_COLUMNS)}) VALUES "
                      f"({', '.join('?' * len(STORED_ROLLUP_COLUMNS))})",
                      (*row[:-1], row[-1]))
    writer.db.execute(f"INSERT INTO {table} ({', '.join(STORED_ROLLUP_COLUMNS)}) VALUES "
                      f"({', '.join('?' * len(STORED_ROLLUP_COLUMNS))})",
                      (*forged, row_digest(table, forged)))
    assert writer.verify().findings[0].startswith(f"{table}: its rows are not")


def test_a_writer_refuses_to_fold_onto_an_edited_row(store: Store) -> None:
    """Folding a later batch into an edited row would give the edit a fresh digest: the
    writer refuses, and verify still names the row."""
    writer = _filled(store)
    row = _row(writer, "rollups_day")
    _set(writer, "rollups_day", row, "lost", row[10] - 1)
    later = make_batches("p1", 5, 300, start_ns=T0 + 59 * NS_MIN, gap_ns=100_000_000)[4]
    writer.write_batch(later, T0)  # stored and acknowledged; the fold waits
    with pytest.raises(EvidenceError, match="rollups_day row .* do not match the row's digest"):
        writer.fold_pending()
    assert any(f.startswith("rollups_day row") for f in writer.verify().findings)


def test_a_writer_refuses_an_edited_evidence_state(store: Store) -> None:
    writer = _filled(store)
    lanes = LtHash.from_bytes(bytes(writer.db.execute(
        "SELECT state FROM evidence_state WHERE tbl = 'rollups_hour'").fetchone()[0]))
    lanes.lanes[0] += np.uint16(1)
    writer.db.execute("UPDATE evidence_state SET state = ? WHERE tbl = 'rollups_hour'",
                      (lanes.to_bytes(),))
    writer.write_batch(make_batches("p3", 1, 50)[0], T0)
    with pytest.raises(EvidenceError, match="rollups_hour: the stored evidence state"):
        writer.fold_pending()


def test_a_writer_refuses_to_fold_edited_raw_results(store: Store) -> None:
    """Batches folded from their stored raw results (another collector's, or after a
    restart) are checked against their batch link first."""
    writer = _filled(store)
    writer.write_batch(make_batches("p3", 1, 50)[0], T0)
    writer._held.clear()  # as after a restart
    bid, method, data = writer.db.execute("SELECT bid, method, data FROM blobs ORDER BY bid "
                                          "DESC LIMIT 1").fetchone()
    writer.db.execute("UPDATE blobs SET data = ? WHERE bid = ? AND method = ?",
                      (bytes(data) + b"\0", bid, method))
    with pytest.raises(EvidenceError, match="raw results are missing or do not match"):
        writer.fold_pending()


def test_verify_after_retention_still_checks_every_rollup(store: Store) -> None:
    """With every raw result pruned, the rollups are all that is left: still covered."""
    writer = _filled(store)
    writer.prune(2**62)
    report = writer.verify(deep=True)
    assert report.ok
    assert (report.raw_checked, report.deep_rows) == (0, 0)
    row = _row(writer, "rollups_hour")
    _set(writer, "rollups_hour", row, "lost", row[10] + 3)
    assert not writer.verify().ok


def test_deep_verify_rebuilds_the_rollups_from_raw_results(store: Store) -> None:
    """A forged row with a matching digest *and* an evidence state made to agree cannot pass
    a deep verify: it differs from the rollup rebuilt from the raw results."""
    writer = _filled(store)
    report = writer.verify(deep=True)
    assert report.ok
    assert report.deep_rows == sum(report.rows_checked.values()) - _before_cut(writer)
    row = _row(writer, "rollups")
    edited = list(row)
    edited[10] += 1
    writer.db.execute(f"UPDATE rollups SET lost = ?, digest = ? WHERE {_KEY}",
                      (edited[10], row_digest("rollups", edited[:-1]), *row[:4]))
    deep = writer.verify(deep=True).findings
    assert f"rollups row {key_text(row)}: differs from the rollup rebuilt from the stored raw " \
           "results" in deep


def _before_cut(writer: Writer) -> int:
    """Rows of units not wholly after the raw-results cut (the deep check leaves them)."""
    cut = -(-CUT // NS_MIN)
    n = 0
    for table, size in (("rollups", 1), ("rollups_hour", 60), ("rollups_day", 1440)):
        low = -(-cut // size) * size
        n += int(writer.db.execute(f"SELECT COUNT(*) FROM {table} WHERE minute < ?",
                                   (low,)).fetchone()[0])
    return n


def test_row_encoding_and_digest() -> None:
    row = ("a/CT>b/CM", 7, 1.5, None, b"\x01\x02")
    assert encode_row(row) == (b"\x03\x00\x00\x00\x09a/CT>b/CM" + b"\x01" + (7).to_bytes(8, "big")
                               + b"\x02?\xf8\x00\x00\x00\x00\x00\x00" + b"\x00"
                               + b"\x04\x00\x00\x00\x02\x01\x02")
    assert row_digest("rollups", row) != row_digest("rollups_hour", row)
    with pytest.raises(ValueError, match="cannot encode"):
        encode_row([object()])


def test_lthash_is_a_multiset_hash() -> None:
    digests = [bytes([i]) * 32 for i in range(5)]
    one, other = LtHash(), LtHash()
    one.add("t", digests)
    other.add("t", reversed(digests))
    assert one == other
    one.remove("t", digests[:2])
    other = LtHash()
    other.add("t", digests[2:])
    assert one == other
    assert LtHash.from_bytes(one.to_bytes()) == one
    assert one.hexdigest() != LtHash().hexdigest()
