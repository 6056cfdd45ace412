"""Readers never write: analyze, report and verify on a read-only copy of the store (a read-only
bind mount; a PostgreSQL role that may only SELECT) give what the writable original gives, and
no byte of the store changes; batches not folded yet are folded in memory."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from analyzer.store import Query, StoreError, open_reader, open_store
from analyzer.synthetic.results import MIN_NS, T0, results
from ixmeter.cli import main
from ixmeter.core.wire import Batch
from tests.analyzer.test_evaluate import BASELINE, BUSY, CURRENT, DAY, INV, _fill
from tests.conftest import IS_ROOT
from tests.store.pgcluster import PgCluster

ARGS = ["--inventory", str(INV), "--baseline", BASELINE, "--current", CURRENT, "--seed", "7"]


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with folded and pending batches (the collector stopped before its next fold)."""
    path = tmp_path_factory.mktemp("ro") / "store.db"
    _fill(path)
    writer = open_store(path)
    late = tuple(results("s1", "A", "s3", "B", start_ns=T0 + DAY + BUSY + 30 * MIN_NS,
                         minutes=10, per_minute=10, median_ms=3, seed=99))
    writer.write_batch(Batch(late[0].probe_id, "late", late), 0)
    writer.db.close()  # type: ignore[attr-defined]  # killed before its next fold
    reader = open_reader(path)
    assert reader.pending().batches > 0  # type: ignore[attr-defined]
    reader.close()
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _outputs(db: str, out: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, bytes]:
    """What an auditor runs: analyze --json, report, verify; their bytes."""
    capsys.readouterr()
    assert main(["analyze", "--db", db, *ARGS, "--json"]) == 0
    analyzed = capsys.readouterr().out.encode()
    assert main(["report", "--db", db, *ARGS, "--out", str(out)]) == 0
    assert main(["verify", "--db", db, "--deep"]) == 0
    verified = capsys.readouterr().out.splitlines()[-1].encode()  # the head line
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    return {"analyze": analyzed, "verify": verified, **files}


def test_readers_change_no_byte(original: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "copy.db"
    shutil.copy(original, copy)
    before = _sha(copy)
    _outputs(str(copy), tmp_path / "report", capsys)
    assert _sha(copy) == before
    reader = open_reader(copy)
    assert reader.read_rollups(Query(0, 2**62))
    with pytest.raises(StoreError, match="read-only"):
        reader.db.write().__enter__()  # type: ignore[attr-defined]
    reader.close()
    assert _sha(copy) == before


@contextmanager
def _mounted(original: Path, tmp_path: Path, wal: bytes = b"") -> Iterator[Path]:
    """A copy of the store (and a WAL file, if given) on a read-only bind mount."""
    src, mnt = tmp_path / "src", tmp_path / "mnt"
    src.mkdir()
    mnt.mkdir()
    shutil.copy(original, src / "store.db")
    if wal:
        (src / "store.db-wal").write_bytes(wal)
    subprocess.run(["mount", "--bind", str(src), str(mnt)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mnt)], check=True)
        yield mnt / "store.db"
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.fixture
def ro_mount(original: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the store on a read-only bind mount (as root), unmounted afterwards."""
    if not IS_ROOT:
        pytest.skip("a read-only bind mount needs root; CI runs as root")
    with _mounted(original, tmp_path) as db:
        yield db


@pytest.mark.root
def test_a_read_only_mount_gives_the_same_answers(original: Path, ro_mount: Path,
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(OSError, match="Read-only file system"):
        (ro_mount.parent / "probe").write_text("x")  # really read-only
    before = _sha(ro_mount)
    mounted = _outputs(str(ro_mount), tmp_path / "ro", capsys)
    copy = tmp_path / "rw.db"
    shutil.copy(original, copy)
    writable = _outputs(str(copy), tmp_path / "rw", capsys)
    assert mounted == writable
    assert _sha(ro_mount) == before
    assert sorted(os.listdir(ro_mount.parent)) == ["store.db"]


@pytest.mark.root
def test_a_store_with_an_unfinished_wal_is_refused_clearly(original: Path,
                                                           tmp_path: Path) -> None:
    """A copy taken while a writer held changes in the WAL, on a read-only mount: reading it
    as immutable would miss them, so it is refused with what to do."""
    if not IS_ROOT:
        pytest.skip("a read-only bind mount needs root; CI runs as root")
    wal = b"\x37\x7f\x06\x82" + bytes(60)
    with (_mounted(original, tmp_path, wal) as db,
          pytest.raises(StoreError, match="write-ahead log store.db-wal holds changes")):
        open_reader(db)


def test_a_reader_refuses_what_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no SQLite store"):
        open_reader(tmp_path / "none.db")
    import sqlite3

    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(StoreError, match="not an ixmeter store"):
        open_reader(tmp_path / "other.db")


@pytest.mark.postgres
def test_a_read_only_postgres_role_gives_the_same_answers(
        pg_cluster: PgCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An auditor's role that may only SELECT: the same analysis, report and verify as the
    owner's, and a writer cannot be opened with it."""
    import psycopg

    url = pg_cluster.new_database()
    _fill(url)
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS auditor")
        admin.execute("CREATE ROLE auditor LOGIN")
        admin.execute(f"GRANT CONNECT ON DATABASE {name} TO auditor")
        admin.execute("GRANT USAGE ON SCHEMA public TO auditor")
        admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO auditor")
    ro_url = url.replace("postgres@", "auditor@", 1)
    owner = _outputs(url, tmp_path / "owner", capsys)
    auditor = _outputs(ro_url, tmp_path / "auditor", capsys)
    assert auditor == owner
    with pytest.raises(StoreError, match="permission denied"):
        open_store(ro_url)
    reader = open_reader(url)  # even the owner's reader runs read-only transactions
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        reader.db.execute("DELETE FROM probes")  # type: ignore[attr-defined]
    reader.close()
