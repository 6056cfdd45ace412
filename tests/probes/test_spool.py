"""The probe spool on real SQLite files: order, acknowledgement, restarts and kill -9."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ixmeter.core.record import Method, Result, Status, TimestampSource, TypeP
from probes.spool import Spool, SpoolLimits, SpoolStatus
from tests.analyzer.wire_oracle import read

PROBE = "cs-tianyi-zn-ct"


def result(seq: int, probe: str = PROBE, lost: bool = False) -> Result:
    return Result(
        probe_id=probe, method=Method.ICMP, src_site="cs-tianyi-zn", src_carrier="CT",
        dst_site="cs-yungu", dst_carrier="CM", src_addr="198.18.1.10", dst_addr="198.18.65.10",
        type_p=TypeP("icmp", 4, 64), seq=seq, sent_at_ns=1_790_000_000_000_000_000 + seq,
        status=Status.LOST if lost else Status.RECEIVED, tmax_ns=3_000_000_000,
        ts_source=TimestampSource.KERNEL, rtt_ns=None if lost else 1_000_000 + seq)



def _seqs(body: bytes) -> list[int]:
    return [r.seq for r in read(body)[2]]


def test_batches_in_order_deleted_only_on_ack(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", PROBE)
    spool.add(result(i) for i in range(25))
    first = spool.seal(10)
    second = spool.seal(10)
    assert first is not None
    assert second is not None
    assert spool.next_batch() == first
    assert _seqs(first.body) == list(range(10))
    assert _seqs(second.body) == list(range(10, 20))
    assert spool.depth() == 25
    spool.ack(first.batch_id)
    assert spool.next_batch() == second
    assert spool.depth() == 15
    spool.close()


def test_batch_id_and_body_stable_across_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", PROBE)
    spool.add(result(i) for i in range(5))
    sealed = spool.seal(100)
    spool.close()
    again = Spool(tmp_path / "s.db", PROBE)
    assert again.next_batch() == sealed
    assert again.seal(100) is None
    again.close()


def test_batch_ids_never_repeat_even_after_everything_acked(tmp_path: Path) -> None:
    ids = set()
    for _ in range(3):
        spool = Spool(tmp_path / "s.db", PROBE)
        spool.add([result(1)])
        sealed = spool.seal()
        assert sealed is not None
        ids.add(sealed.batch_id)
        spool.ack(sealed.batch_id)
        spool.close()
    assert len(ids) == 3
    other = Spool(tmp_path / "other.db", PROBE)  # a new file: another instance id
    other.add([result(1)])
    sealed = other.seal()
    assert sealed is not None
    assert sealed.batch_id not in ids


def test_split_and_set_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", PROBE)
    spool.add(result(i) for i in range(7))
    sealed = spool.seal()
    assert sealed is not None
    assert spool.split(sealed.batch_id) == 2
    a = spool.next_batch()
    assert a is not None
    assert _seqs(a.body) == [0, 1, 2]
    spool.set_aside(a.batch_id, "refused", '{"error": "bad body"}')
    b = spool.next_batch()
    assert b is not None
    assert _seqs(b.body) == [3, 4, 5, 6]
    assert _queue(spool.status()) == (4, {"refused": (1, 3)})
    row = spool._db.execute("SELECT batch_id, n, body, reason, detail, set_aside_at "
                            "FROM rejected").fetchone()
    assert row[:5] == (a.batch_id, 3, a.body, "refused", '{"error": "bad body"}')
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row[5])
    with pytest.raises(ValueError, match="not one of"):
        spool.set_aside(b.batch_id, "because", "")


def test_a_single_result_too_large_is_set_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", PROBE)
    spool.add([result(0), result(1)])
    sealed = spool.seal(1)
    assert sealed is not None
    assert spool.split(sealed.batch_id, "413: over the limit") == 1
    assert spool.set_aside_counts() == {"too_large": (1, 1)}
    assert spool.depth() == 1
    spool.close()


def test_sealed_body_is_wire_v2_of_the_results(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", PROBE)
    results = [result(i, lost=i % 3 == 0) for i in range(5)]
    spool.add(results)
    sealed = spool.seal()
    assert sealed is not None
    assert json.loads(sealed.body)["v"] == 2
    assert read(sealed.body) == (PROBE, sealed.batch_id, results)
    spool.close()


def test_another_probes_result_is_set_aside_when_sealing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", PROBE)
    spool.add([result(0), result(1, probe="someone-else"), result(2)])
    sealed = spool.seal()
    assert sealed is not None
    assert _seqs(sealed.body) == [0, 2]
    assert spool.set_aside_counts() == {"unreadable": (1, 1)}
    spool.close()


WRITER = """
import sys
from ixmeter.core.record import Method, Result, Status, TimestampSource, TypeP
from probes.spool import Spool

PROBE = "cs-tianyi-zn-ct"


def result(seq: int, probe: str = PROBE, lost: bool = False) -> Result:
    return Result(
        probe_id=probe, method=Method.ICMP, src_site="cs-tianyi-zn", src_carrier="CT",
        dst_site="cs-yungu", dst_carrier="CM", src_addr="198.18.1.10", dst_addr="198.18.65.10",
        type_p=TypeP("icmp", 4, 64), seq=seq, sent_at_ns=1_790_000_000_000_000_000 + seq,
        status=Status.LOST if lost else Status.RECEIVED, tmax_ns=3_000_000_000,
        ts_source=TimestampSource.KERNEL, rtt_ns=None if lost else 1_000_000 + seq)

spool = Spool(sys.argv[1], PROBE)
i = 0
while True:
    spool.add(result(i + k) for k in range(10))
    i += 10
    if i % 50 == 0:
        spool.seal(30)
    print(i, flush=True)
"""


def test_kill_9_while_writing_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                             text=True, cwd=Path(__file__).parents[2])
    assert child.stdout is not None
    committed = 0
    deadline = time.monotonic() + 30
    while committed < 400 and time.monotonic() < deadline:
        committed = int(child.stdout.readline())
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert committed >= 400
    spool = Spool(path, PROBE)
    seqs: list[int] = []
    while (batch := spool.next_batch() or spool.seal(1000)) is not None:
        seqs += _seqs(batch.body)
        spool.ack(batch.batch_id)
    assert len(seqs) >= committed  # every acknowledged write survived
    assert seqs == list(range(len(seqs)))  # in order, no gap, no duplicate
    spool.close()


def _queue(status: SpoolStatus) -> tuple[int, object]:
    """Depth and set-aside counts (the bytes depend on SQLite's page layout)."""
    return status.depth, dict(status.set_aside)


NOW = 1_790_000_000_000_000_000 + 10**9  # just after result(seq)'s send times


def _seqs_left(spool: Spool) -> list[int]:
    rows = spool._db.execute("SELECT body FROM results ORDER BY id").fetchall()
    return [json.loads(body)["seq"] for (body,) in rows]


def test_bytes_limit_drops_the_oldest_first_and_counts_them(tmp_path: Path) -> None:
    """The issue's finding: the spool had no size cap (about 7 GB a day with the collector
    down). Over ``max_bytes`` the oldest go first, sealed batches before loose results."""
    spool = Spool(tmp_path / "s.db", PROBE)
    for start in range(0, 20_000, 1000):
        spool.add(result(start + k) for k in range(1000))
    sealed = spool.seal(1000)
    assert sealed is not None
    full = spool.used_bytes()
    limits = SpoolLimits(max_bytes=full // 4, max_age_s=1e9)
    dropped = spool.enforce(limits, NOW)
    left = _seqs_left(spool)
    assert spool.used_bytes() <= full // 4
    assert dropped["max_bytes"] == 20_000 - len(left) > 0
    assert left == list(range(20_000 - len(left), 20_000))  # the newest stay, in order
    assert spool.next_batch() is None  # the sealed (oldest) batch went first
    assert spool.status().dropped == {"max_age": 0, "max_bytes": dropped["max_bytes"],
                                      "disk_full": 0}
    spool.close()
    again = Spool(tmp_path / "s.db", PROBE)  # the counts survive a restart
    assert again.dropped()["max_bytes"] == dropped["max_bytes"]
    again.close()


def test_age_limit_drops_results_sent_too_long_ago(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", PROBE)
    spool.add(result(i) for i in range(100))
    spool.seal(10)  # seqs 0-9: a batch whose results are all old
    spool.add([replace(result(1000), sent_at_ns=NOW)])
    dropped = spool.enforce(SpoolLimits(max_age_s=0.5), NOW)
    assert dropped == {"max_age": 100, "max_bytes": 0}
    assert _seqs_left(spool) == [1000]
    assert spool.next_batch() is None
    spool.close()


def test_a_batch_is_dropped_whole_once_all_its_results_are_old(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", PROBE)
    spool.add([result(0), replace(result(1), sent_at_ns=NOW)])
    spool.seal(10)
    assert spool.enforce(SpoolLimits(max_age_s=0.5), NOW)["max_age"] == 0
    assert spool.next_batch() is not None  # its newer result keeps the batch whole
    spool.close()
