"""Store fixtures: every store test runs on SQLite and on a throwaway real PostgreSQL cluster.

The PostgreSQL cluster is created once per session when running as root with Debian's
``postgresql`` package (``/usr/lib/postgresql/*/bin/initdb``): ``initdb`` as the ``postgres``
user in a temp dir, ``pg_ctl start`` on a free 127.0.0.1 port, stopped and deleted at the end.
Otherwise the ``postgres`` tests skip and say why.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from analyzer.store import Store, open_store
from tests.conftest import IS_ROOT

StoreFactory = Callable[..., Store]
_db_numbers = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*cmd: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of a throwaway PostgreSQL server (superuser ``postgres``, trust auth, loopback)."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not IS_ROOT:
        pytest.skip("PostgreSQL tests need root to run initdb as the postgres user")
    if not initdb or shutil.which("runuser") is None:
        pytest.skip("Debian package postgresql not installed (make test installs it as root)")
    bindir = Path(initdb[-1]).parent
    tmp = Path(tempfile.mkdtemp(prefix="ixmeter-pg-"))
    shutil.chown(tmp, "postgres", "postgres")
    data, port = tmp / "data", _free_port()
    try:
        _as_postgres(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                     "--no-sync", "-E", "UTF8")
        opts = (f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off")
        _as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                     str(tmp / "log"), "-w", "-t", "60", "start")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            _as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                         "stop")
        shutil.rmtree(tmp, ignore_errors=True)


def new_pg_database(server_url: str) -> str:
    """A fresh empty database on the session server; its URL."""
    import psycopg

    name = f"t{os.getpid()}_{next(_db_numbers)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh store lives: a SQLite file path or a new PostgreSQL database URL."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return new_pg_database(request.getfixturevalue("pg_server"))


@pytest.fixture
def make_store(store_target: str) -> Iterator[StoreFactory]:
    """Open (or re-open) stores on the test's database; all closed at the end."""
    opened: list[Store] = []

    def factory(**kw: object) -> Store:
        store = open_store(store_target, **kw)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    return make_store()
