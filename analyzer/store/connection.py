"""The store's database connection: one interface over SQLite and PostgreSQL, writable or not.

A :class:`Db` runs SQL with ``?`` placeholders, opens *write* transactions that serialise every
writer of the store (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a transaction-scoped advisory lock,
so several collectors extend one chain) and *snapshots*: read transactions in which every query
sees the same committed state (SQLite's read transaction over the WAL; PostgreSQL ``REPEATABLE
READ READ ONLY``), so a report's figures and the chain head it quotes come from one state.

A read-only ``Db`` (what ``analyze``, ``report``, ``verify`` and the dashboard open) never
writes a byte: SQLite is opened with ``mode=ro`` (or, where the file's directory cannot hold
the WAL's shared-memory file, e.g. a read-only mount, as ``immutable``, which is only safe when
nothing writes: the WAL must then be empty); PostgreSQL sessions are read-only
(``default_transaction_read_only``), so a read-only role or a hot standby serves them.
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ixmeter.core.errors import IxmeterError

WRITE_LOCK = 0x1C0113C7  # pg_advisory_xact_lock key of the store's writers


class StoreError(IxmeterError):
    """The store cannot be opened or used as asked (the message says what to do)."""


class Db:
    """A connection and its transactions; see the module docstring."""

    dialect = "sqlite"
    placeholder = "?"

    def __init__(self, conn: Any, readonly: bool) -> None:
        self.conn = conn
        self.readonly = readonly
        self._depth = 0  # nesting of write transactions and snapshots
        self._writing = False

    # -- statements ------------------------------------------------------------------------
    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def execute(self, text: str, params: Sequence[Any] = ()) -> Any:
        if not self._depth:
            self.reconnect_if_lost()
        cur = self.conn.cursor()
        cur.execute(self.sql(text), tuple(params))
        return cur

    def executemany(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.conn.cursor().executemany(self.sql(text), rows)

    def reconnect_if_lost(self) -> None:
        """Backends that can lose their connection re-open it (never inside a transaction)."""

    # -- transactions ----------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[None]:
        """One write transaction holding the writers' lock: committed on success, rolled
        back on any error. Nested calls join the outer transaction."""
        if self.readonly:
            raise StoreError("this store was opened read-only")
        if self._depth:
            if not self._writing:
                raise StoreError("a write cannot start inside a read snapshot")
            yield
            return
        self.reconnect_if_lost()
        self._depth, self._writing = 1, True
        try:
            self._begin_write()
            yield
            self.conn.cursor().execute("COMMIT")
        except BaseException:
            with suppress(Exception):  # a lost connection was rolled back by the server
                self.conn.cursor().execute("ROLLBACK")
            raise
        finally:
            self._depth, self._writing = 0, False

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every query inside sees one committed state. Nested in a write
        transaction or another snapshot it joins it."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.reconnect_if_lost()
        self._depth = 1
        try:
            self.conn.cursor().execute(self._begin_read)
            yield
        finally:
            self._depth = 0
            with suppress(Exception):
                self.conn.cursor().execute("ROLLBACK")

    _begin_read = "BEGIN"

    def _begin_write(self) -> None:
        self.conn.cursor().execute("BEGIN IMMEDIATE")

    def close(self) -> None:
        self.conn.close()


class SqliteDb(Db):
    """SQLite: WAL journal with ``synchronous=NORMAL`` for the writer."""

    def __init__(self, path: str | Path, readonly: bool) -> None:
        self.path = Path(path)
        conn = _open_readonly(self.path) if readonly else _open_writer(self.path)
        super().__init__(conn, readonly)


def _open_writer(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                               timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open SQLite database {str(path)!r} for writing: {exc}",
                         hint="check the path and that its directory is writable") from None
    return conn


def _open_readonly(path: Path) -> sqlite3.Connection:
    """``mode=ro``; where SQLite cannot use the WAL index beside the file (a read-only
    directory), ``immutable=1`` provided the WAL holds nothing."""
    if not path.is_file():
        raise StoreError(f"no SQLite store at {str(path)!r}")
    uri = f"file:{quote(str(path.resolve()))}"
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None,
                           check_same_thread=False, timeout=30)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(
            f"cannot read {str(path)!r} read-only: its write-ahead log {wal.name} holds "
            "changes not yet in the file and the directory is not writable",
            hint="take the copy with `sqlite3 SRC '.backup DEST'` (or stop the collector "
                 "first), or mount the directory writable")
    conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot open SQLite database {str(path)!r} read-only: {exc}") from None
    return conn


class PostgresDb(Db):
    """PostgreSQL (psycopg 3), imported only when a PostgreSQL store is opened."""

    dialect = "postgres"
    placeholder = "%s"
    _begin_read = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

    def __init__(self, url: str, readonly: bool) -> None:
        self.url = url
        super().__init__(self._connect(url, readonly), readonly)

    @staticmethod
    def _connect(url: str, readonly: bool) -> Any:
        import psycopg

        options = "-c default_transaction_read_only=on" if readonly else None
        try:
            return psycopg.connect(url, autocommit=True, options=options)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {redact(url)}: {exc}",
                             hint="check the URL, that the server runs and the role may "
                                  "log in") from None

    def reconnect_if_lost(self) -> None:
        """Reconnect after the server restarted or the network dropped the connection."""
        if self.conn.broken or self.conn.closed:
            self.conn = self._connect(self.url, self.readonly)

    def _begin_write(self) -> None:
        cur = self.conn.cursor()
        cur.execute("BEGIN")
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))


def redact(url: str) -> str:
    """The URL without its password, for error messages."""
    head, sep, tail = url.rpartition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, cred = head.partition("//")
    return f"{scheme}//{cred.split(':', 1)[0]}:***@{tail}"


def is_postgres_url(target: str | Path) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


def connect(target: str | Path, readonly: bool) -> Db:
    """A SQLite file path or a ``postgresql://`` URL -> its :class:`Db`."""
    if is_postgres_url(target):
        return PostgresDb(str(target), readonly)
    return SqliteDb(target, readonly)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small acyclic objects."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
