"""The shared store test-suite: every test runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from analyzer.columns import decode_blob, encode_blob
from analyzer.store import Query, Store, open_store
from analyzer.store.writes import Writer
from analyzer.synthetic.varied import NS_MIN, T0, make_batches
from ixmeter.core.errors import RecordError
from tests.oracles.rollup_records import build_rollups
from tests.store.conftest import StoreFactory
from tests.store.pgcluster import PgCluster

ALL = Query(0, 2**62)


def _raw(store: Store, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Edit the database behind the store's back (an attacker with write access)."""
    assert isinstance(store, Writer)
    store.db.execute(sql, params)


def _edit_blob(store: Store, bid: int, position: int) -> None:
    """Add 1 ns to one stored RTT, re-encoding the blob as a careful attacker would."""
    assert isinstance(store, Writer)
    method, ids, data = store.db.execute("SELECT method, stream_ids, data FROM blobs WHERE bid = ? "
                                    "ORDER BY method", (bid,)).fetchone()
    blocks = decode_blob([("",) * 14] * len(ids.split(",")), bytes(data))
    blocks[0].rtt_ns[position] += 1
    _raw(store, "UPDATE blobs SET data = ? WHERE bid = ? AND method = ?",
         (encode_blob(blocks), bid, method))


def test_write_is_idempotent(store: Store) -> None:
    b1, b2 = make_batches("p1", 2, 300)
    first = store.write_batch(b1, T0)
    assert (first.accepted, first.duplicate) == (300, False)
    store.write_batch(b2, T0 + 1)
    again = store.write_batch(b1, T0 + 2)
    assert (again.accepted, again.duplicate, again.chain_head) == (0, True, first.chain_head)
    assert store.chain_head().length == 2
    assert len(list(store.read_results(ALL))) == 600
    assert sum(r.sent for r in store.read_rollups(ALL)) == sum(
        r.sent for r in build_rollups(b1.results + b2.results))


def test_results_round_trip_in_send_order(store: Store) -> None:
    batches = make_batches("p1", 3, 200)
    for b in reversed(batches):
        store.write_batch(b, T0)
    assert list(store.read_results(ALL)) == [r for b in batches for r in b.results]


def test_rollups_equal_build_rollups_when_batches_hold_whole_minutes(store: Store) -> None:
    batches = make_batches("p1", 3, 1000, gap_ns=60_000_000)  # one minute per batch
    for b in batches:
        store.write_batch(b, T0)
    expected = build_rollups([r for b in batches for r in b.results])
    assert store.read_rollups(ALL) == expected


def test_minutes_split_over_batches_merge_exactly(store: Store) -> None:
    batches = make_batches("p1", 6, 500)  # 3,000 results per minute: each minute in 6 batches
    for b in batches:
        store.write_batch(b, T0)
    expected = {r.key: r for r in build_rollups([r for b in batches for r in b.results])}
    got = store.read_rollups(ALL)
    assert [r.key for r in got] == sorted(expected)
    for r in got:
        e = expected[r.key]
        exact = ("sent", "received", "lost", "errors", "duplicated", "unsynced", "tmax_ns",
                 "clock_error_max_ns")
        assert [getattr(r, f) for f in exact] == [getattr(e, f) for f in exact]
        for d in ("rtt", "fwd", "bwd"):
            a, b = getattr(r, d), getattr(e, d)
            assert (a.n, a.min, a.max, a.sum, a.below, a.sketch) == (
                b.n, b.min, b.max, b.sum, b.below, b.sketch)
            assert a.sumsq == pytest.approx(b.sumsq, rel=1e-12)
        assert r.loss_periods >= e.loss_periods  # a period split by a batch counts twice


def test_window_and_filters(store: Store) -> None:
    for b in make_batches("p1", 12, 500):  # two minutes
        store.write_batch(b, T0)
    minutes = {r.minute for r in store.read_rollups(Query(T0 + NS_MIN, T0 + 2 * NS_MIN))}
    assert minutes == {T0 // NS_MIN + 1}
    mid = {r.minute for r in store.read_rollups(Query(T0 + NS_MIN // 2, T0 + NS_MIN + 1))}
    assert mid == {T0 // NS_MIN, T0 // NS_MIN + 1}  # every minute overlapping the window
    path = "csx-a/CT>yy-a/CU"
    only = store.read_rollups(Query(0, 2**62, path_ids=[path], method="stamp"))
    assert only
    assert {(r.path_id, r.method) for r in only} == {(path, "stamp")}
    icmp = store.read_rollups(Query(0, 2**62, type_p="icmp/v4/64/dscp0"))
    assert icmp
    assert {r.method for r in icmp} == {"icmp"}
    window = list(store.read_results(Query(T0 + 1000 * 20_000_000, T0 + 1010 * 20_000_000)))
    assert [r.seq for r in window] == list(range(1000, 1010))
    assert all(r.path_id == path for r in store.read_results(Query(0, 2**62, path_ids=[path])))


def test_prune_keeps_rollups_and_chain(store: Store) -> None:
    for b in make_batches("p1", 12, 500):  # two minutes, six batches each
        store.write_batch(b, T0)
    before = store.read_rollups(ALL)
    removed = store.prune(T0 + NS_MIN)
    assert removed == 3000
    assert min(r.sent_at_ns for r in store.read_results(ALL)) == T0 + NS_MIN
    assert store.read_rollups(ALL) == before
    report = store.verify()
    assert report.ok, report.findings
    assert (report.batches, report.raw_checked, report.raw_pruned) == (12, 6, 6)
    assert store.prune(T0 + NS_MIN) == 0  # nothing more to prune: no new link
    assert store.chain_head().length == report.length


def test_prune_keeps_a_batch_that_straddles_the_cut(store: Store) -> None:
    """Retention deletes whole batches sent before the cut: a batch with results on both
    sides stays whole until a later cut passes its last result."""
    batches = make_batches("p1", 4, 500)  # 10 s per batch
    for b in batches:
        store.write_batch(b, T0)
    cut = T0 + 15_000_000_000 + 1  # halfway through the second batch
    assert store.prune(cut) == 500
    assert list(store.read_results(ALL)) == [r for b in batches[1:] for r in b.results]
    assert store.verify().ok


def test_prune_never_deletes_raw_results_not_yet_folded(store: Store) -> None:
    for b in make_batches("p1", 3, 100):
        store.write_batch(b, T0)
    before = store.read_rollups(ALL)
    assert store.prune(2**62) == 300  # folds first, then prunes
    assert store.read_rollups(ALL) == before
    assert store.verify().ok


def test_minute_retention_is_a_link_and_keeps_the_tiers(store: Store) -> None:
    for b in make_batches("p1", 2, 3000, gap_ns=40_000_000):  # four minutes
        store.write_batch(b, T0)
    hours = store.read_rollups(Query(0, 2**62, tier="hour"))
    minutes = len(store.read_rollups(ALL))
    assert store.prune_rollups(T0 + 86_400 * 10**9) == minutes
    assert not store.read_rollups(ALL)
    assert store.read_rollups(Query(0, 2**62, tier="hour")) == hours
    report = store.verify()
    assert report.ok, report.findings
    assert report.rows_checked["rollups"] == 0


def test_a_read_decodes_only_the_blobs_it_asks_for(store: Store) -> None:
    """A garbled blob breaks only the reads that need it: other methods and other paths
    are read without decoding it."""
    near = make_batches("p1", 1, 100)[0]
    far = make_batches("p2", 1, 100, paths=(("zz-a", "CT", "zz-b", "CU"),))[0]
    store.write_batch(near, T0)
    store.write_batch(far, T0)
    _raw(store, "UPDATE blobs SET data = ? WHERE bid = 2 AND method = 'icmp'", (b"junk",))
    _raw(store, "UPDATE blobs SET data = ? WHERE bid = 1 AND method = 'stamp'", (b"junk",))
    path = "csx-a/CT>yy-a/CU"
    assert list(store.read_results(Query(0, 2**62, method="icmp", path_ids=[path]))) == [
        r for r in near.results if r.method.value == "icmp" and r.path_id == path]
    far_stamp = Query(0, 2**62, method="stamp", path_ids=["zz-a/CT>zz-b/CU"])
    assert list(store.read_results(far_stamp)) == [  # bid 1's has no stream there
        r for r in far.results if r.method.value == "stamp"]
    with pytest.raises(RecordError, match="stored blob"):
        list(store.read_results(ALL))


def test_verify_detects_an_edited_result(store: Store) -> None:
    for b in make_batches("p1", 4, 100):
        store.write_batch(b, T0)
    assert store.verify().ok
    _edit_blob(store, bid=3, position=7)
    report = store.verify()
    assert not report.ok
    assert report.findings[0].startswith("link #3 (batch p1/p1-b2): the stored raw results")


@pytest.mark.parametrize(("sql", "where"), [
    ("UPDATE links SET at_ns = at_ns + 1 WHERE idx = 2", "link #2"),
    ("DELETE FROM links WHERE idx = 2", "link #3"),
    ("UPDATE links SET n = n + 1 WHERE idx = 2", "link #2"),
    ("UPDATE links SET last_ns = 0 WHERE idx = 1", "link #1"),
    ("UPDATE links SET thresholds = '1' WHERE idx = 3", "link #3"),
    ("UPDATE links SET detail = replace(detail, '\"batches\":[[1,3]]', '\"batches\":[[1,2]]') "
     "WHERE kind = 'fold'", "link #4"),
    ("UPDATE streams SET dst_addr = '198.18.9.9'", "link #1"),
    ("UPDATE blobs SET method = 'stamq' WHERE bid = 2 AND method = 'stamp'", "link #2"),
    ("DELETE FROM blobs WHERE bid = 3 AND method = 'icmp'", "link #3"),
    ("DELETE FROM blobs WHERE bid = 3", "link #3"),
    ("UPDATE blobs SET stream_ids = (SELECT stream_ids FROM blobs WHERE bid = 1 "
     "AND method = 'stamp') WHERE bid = 2 AND method = 'icmp'", "link #2"),
    ("UPDATE blobs SET stream_ids = 'x' WHERE bid = 2 AND method = 'icmp'", "link #2"),
    ("UPDATE blobs SET stream_ids = stream_ids || ',' || stream_ids WHERE bid = 2 "
     "AND method = 'icmp'", "link #2"),
    # the columns window reads and retention select blobs by
    ("UPDATE blobs SET first_ns = first_ns + 1 WHERE bid = 2 AND method = 'icmp'", "link #2"),
    ("UPDATE blobs SET last_ns = last_ns - 1 WHERE bid = 3 AND method = 'stamp'", "link #3"),
    ("UPDATE blobs SET n = n + 1 WHERE bid = 1 AND method = 'icmp'", "link #1"),
])
def test_verify_detects_edited_links_blobs_and_streams(store: Store, sql: str,
                                                       where: str) -> None:
    for b in make_batches("p1", 3, 50):
        store.write_batch(b, T0)
    store.fold_pending()
    _raw(store, sql)
    report = store.verify()
    assert not report.ok
    assert any(re.search(rf"(^|: ){where}\b", f) for f in report.findings), report.findings


def test_heartbeat_and_health(store: Store) -> None:
    store.record_heartbeat("p2", T0, 12, "0.1.0")
    store.write_batch(make_batches("p2", 1, 10)[0], T0 + 5)
    store.record_heartbeat("p2", T0 + 9, 0, "0.1.1")
    [health] = store.probe_health()
    assert (health.probe_id, health.last_seen_ns, health.last_batch_ns, health.spool_depth,
            health.results, health.version) == ("p2", T0 + 9, T0 + 5, 0, 10, "0.1.1")


def test_heartbeat_counters_are_kept(store: Store) -> None:
    store.record_heartbeat("p2", T0, 3, "0.1.0", {"batches_rejected": 1, "results_rejected": 7})
    [health] = store.probe_health()
    assert health.counters == {"batches_rejected": 1, "results_rejected": 7}


def test_write_batches_is_all_or_nothing(store: Store) -> None:
    good, other = make_batches("p1", 2, 20)
    bad = replace(other, results=other.results[:5] + tuple(
        replace(r, probe_id="p9") for r in other.results[5:]))
    with pytest.raises(RecordError):
        store.write_batches([good, bad], T0)
    assert store.chain_head().length == 0
    receipts = store.write_batches([good, other], T0)
    assert [r.accepted for r in receipts] == [20, 20]
    assert store.write_batches([good], T0)[0].duplicate
    assert sum(r.sent for r in store.read_rollups(ALL)) == 40


def test_configured_thresholds_and_reopen(make_store: StoreFactory) -> None:
    store = make_store(thresholds_ns=(1_000_000, 3_000_000, 500_000))
    batch = make_batches("p1", 1, 300)[0]
    store.write_batch(batch, T0)
    [first, *_] = store.read_rollups(ALL)
    assert set(first.rtt.below) == {500_000, 1_000_000, 3_000_000}
    again = make_store()  # re-open: migrations already applied, data still there
    assert again.chain_head() == store.chain_head()
    assert again.write_batch(batch, T0).duplicate


@pytest.mark.postgres
def test_postgres_store_reconnects_after_losing_its_connection(pg_cluster: PgCluster) -> None:
    import psycopg

    url = pg_cluster.new_database()
    store = open_store(url)
    b1, b2 = make_batches("p1", 2, 50)
    store.write_batch(b1, T0)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    with pytest.raises(psycopg.OperationalError):
        store.write_batch(b2, T0)  # the collector answers 503; the probe retries
    assert store.write_batch(b2, T0).accepted == 50
    assert store.chain_head().length == 2
    assert store.verify().ok
    store.close()
