"""Shared test fixtures (a throwaway PostgreSQL cluster for the session) and the ``root``
marker's automatic skip."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
import trio

from tests.store.pgcluster import PgCluster, PgUnavailable

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``root`` skip with a clear reason when not run as root."""
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces / raw sockets); CI runs as root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def require_tool(name: str) -> str:
    """Path of an external tool, or skip the test naming the Debian package to install."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (make test installs it as root)")
    return path


async def promtool_problems(text: str) -> str:
    """What ``promtool check metrics`` says about ``text`` ("" when it passes); skips the test
    if promtool is missing (Debian: prometheus)."""
    promtool = require_tool("promtool")
    done = await trio.run_process([promtool, "check", "metrics"], stdin=text.encode(),
                                  capture_stdout=True, capture_stderr=True, check=False)
    problems = (done.stdout + done.stderr).decode()
    return problems or ("" if done.returncode == 0 else f"exit status {done.returncode}")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL server for the session (skips with the reason if impossible)."""
    try:
        cluster = PgCluster()
    except PgUnavailable as exc:
        pytest.skip(str(exc))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
