"""``ixmeter keys``, ``ixmeter verify`` and ``ixmeter collector serve`` as a user runs them."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from analyzer.collector.keys import load_keys
from analyzer.store import Query, open_reader, open_store
from analyzer.synthetic.varied import T0, make_batches
from ixmeter.cli import main
from ixmeter.core.wire import encode_columns, sign


def test_keys_new_list_rotate_retire(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys.yaml"
    assert main(["keys", "new", "--probe", "p1", "--out", str(keys)]) == 0
    first = capsys.readouterr().out.strip()
    assert load_keys(keys).keys_for("p1") == [bytes.fromhex(first)]
    assert keys.stat().st_mode & 0o777 == 0o600
    assert main(["keys", "new", "--probe", "p1", "--out", str(keys)]) == 2  # already has one
    capsys.readouterr()
    assert main(["keys", "rotate", "--probe", "p1", "--keys", str(keys)]) == 0
    second = capsys.readouterr().out.strip()
    assert load_keys(keys).keys_for("p1") == [bytes.fromhex(second), bytes.fromhex(first)]
    assert main(["keys", "list", "--keys", str(keys)]) == 0
    assert capsys.readouterr().out.startswith("p1\t")
    assert main(["keys", "rotate", "--probe", "p1", "--keys", str(keys), "--retire"]) == 0
    assert load_keys(keys).keys_for("p1") == [bytes.fromhex(second)]


def test_verify_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.db"
    store = open_store(db)
    for b in make_batches("p1", 3, 20):
        store.write_batch(b, T0)
    store.close()
    assert main(["verify", "--db", str(db)]) == 0
    assert capsys.readouterr().out.startswith("ok: 4 links, 3 batches")  # and a fold
    with sqlite3.connect(db) as conn:
        [second] = conn.execute("SELECT head FROM links WHERE idx = 2").fetchone()
    assert main(["verify", "--db", str(db), "--head", second]) == 0
    assert "the given head is link #2" in capsys.readouterr().out
    assert main(["verify", "--db", str(db), "--head", "ab" * 32]) == 1
    assert "NOT FOUND" in capsys.readouterr().out
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE blobs SET data = CAST(data || x'00' AS BLOB) WHERE bid = 2")
    assert main(["verify", "--db", str(db)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("EDITED: 1 problem(s)")
    assert "link #2 (batch p1/p1-b1): the stored raw results" in out


def test_verify_exports_a_signed_head_an_auditor_checks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, key, head = tmp_path / "s.db", tmp_path / "signing.pem", tmp_path / "head.json"
    store = open_store(db)
    for b in make_batches("p1", 2, 20):
        store.write_batch(b, T0)
    store.close()
    assert main(["keys", "signing", "--out", str(key)]) == 0
    public = capsys.readouterr().out.strip()
    assert main(["verify", "--db", str(db), "--export-head", str(head),
                 "--sign-key", str(key)]) == 0
    assert "(signed)" in capsys.readouterr().out
    assert main(["verify", "--db", str(db), "--head-file", str(head),
                 "--public-key", public]) == 0
    assert "the given head is link #3" in capsys.readouterr().out  # 2 batches and a fold
    other = tmp_path / "other.pem"
    assert main(["keys", "signing", "--out", str(other)]) == 0
    stranger = capsys.readouterr().out.strip()
    assert main(["verify", "--db", str(db), "--head-file", str(head),
                 "--public-key", stranger]) == 2
    assert "not the given key's" in capsys.readouterr().err
    store = open_store(db)  # the store goes on: the published head stays in its chain
    store.write_batch(make_batches("p1", 3, 20)[2], T0)
    store.close()
    assert main(["verify", "--db", str(db), "--head-file", str(head)]) == 0


def test_collector_compact_folds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Batches left unfolded by a collector that was killed: ``compact`` folds them (reads
    give the same rollups before and after), and a second run has nothing left to do."""
    db = tmp_path / "s.db"
    store = open_store(db)
    for b in make_batches("p1", 4, 50):
        store.write_batch(b, T0)
    store.db.close()  # type: ignore[attr-defined]  # killed: what it held is lost
    reader = open_reader(db)
    before = reader.read_rollups(Query(0, 2**62))
    reader.close()
    assert main(["collector", "compact", "--db", str(db)]) == 0
    assert capsys.readouterr().out.startswith("folded the rollups of 4 batch(es)")
    assert main(["collector", "compact", "--db", str(db)]) == 0
    assert capsys.readouterr().out.startswith("folded the rollups of 0 batch(es)")
    reader = open_reader(db)
    assert reader.read_rollups(Query(0, 2**62)) == before
    assert sum(r.sent + r.errors for r in before) == 200
    reader.close()
    assert main(["collector", "compact", "--db", str(db), "--minute-rollup-days", "30",
                 "--retention-days", "30"]) == 0  # the results were sent in May 2026
    assert capsys.readouterr().out.splitlines()[1:] == [
        "retention: pruned 200 raw results", f"retention: pruned {len(before)} minute rollups"]
    assert main(["verify", "--db", str(db), "--deep"]) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_collector_serve_subprocess(tmp_path: Path) -> None:
    keys, db, port = tmp_path / "keys.yaml", tmp_path / "c.db", _free_port()
    key = "11" * 32
    keys.write_text(f"p1: {key}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ixmeter.cli", "collector", "serve", "--db", str(db),
         "--bind", f"127.0.0.1:{port}", "--keys", str(keys)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(url + "/healthz").status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, proc.stderr
                time.sleep(0.1)
        body = encode_columns(make_batches("p1", 1, 10)[0])
        headers = sign(bytes.fromhex(key), "p1", "POST", "/v1/batches", body, time.time())
        response = httpx.post(url + "/v1/batches", content=body, headers=headers)
        assert response.json()["accepted"] == 10
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()
    assert main(["verify", "--db", str(db)]) == 0
