"""A throwaway PostgreSQL cluster (Debian ``postgresql``), for tests and benchmarks.

``initdb`` runs as the ``postgres`` user in a fresh temp dir, ``pg_ctl start`` listens on a free
127.0.0.1 port (and a unix socket in the temp dir); :meth:`PgCluster.stop` stops it and deletes
the directory.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

_numbers = itertools.count(1)


class PgUnavailable(Exception):
    """Why no cluster can be started here (not root, package missing)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*cmd: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)


class PgCluster:
    def __init__(self, durable: bool = False) -> None:
        initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if os.geteuid() != 0:
            raise PgUnavailable("PostgreSQL tests need root to run initdb as the postgres user")
        if not initdb or shutil.which("runuser") is None:
            raise PgUnavailable("Debian package postgresql not installed "
                                "(make test installs it as root)")
        self.bindir = Path(initdb[-1]).parent
        self.tmp = Path(tempfile.mkdtemp(prefix="ixmeter-pg-"))
        shutil.chown(self.tmp, "postgres", "postgres")
        self.data, self.port = self.tmp / "data", _free_port()
        self.durable = durable
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> PgCluster:
        try:
            _as_postgres(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust",
                         "-U", "postgres", "--no-sync", "-E", "UTF8")
            opts = f"-p {self.port} -k {self.tmp} -c listen_addresses=127.0.0.1"
            if not self.durable:
                opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            _as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                         str(self.tmp / "log"), "-w", "-t", "60", "start")
        except BaseException:
            self.stop()
            raise
        return self

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(_numbers)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            _as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                         "-w", "stop")
        shutil.rmtree(self.tmp, ignore_errors=True)
