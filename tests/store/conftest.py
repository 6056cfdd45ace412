"""Store fixtures: every store test runs on SQLite and on a throwaway real PostgreSQL cluster.

The PostgreSQL cluster is created once per session when running as root with Debian's
``postgresql`` package (``/usr/lib/postgresql/*/bin/initdb``): ``initdb`` as the ``postgres``
user in a temp dir, ``pg_ctl start`` on a free 127.0.0.1 port, stopped and deleted at the end.
Otherwise the ``postgres`` tests skip and say why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from analyzer.store import Store, open_store
from tests.store.pgcluster import PgCluster

StoreFactory = Callable[..., Store]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh store lives: a SQLite file path or a new PostgreSQL database URL."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.new_database()


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
