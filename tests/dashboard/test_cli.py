"""``ixmeter dashboard``: arguments, windows and errors (no server started)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from analyzer.views import NS_PER_DAY
from dashboard import cli
from dashboard.context import Context
from ixmeter.core.errors import IxmeterError


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return parser.parse_args(list(argv))


def test_defaults() -> None:
    a = _args("--db", "x.db")
    assert (a.port, a.host, a.demo_data) == (8050, "127.0.0.1", False)


def test_missing_database_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(IxmeterError, match="no database") as info:
        cli.build_context(_args("--db", str(tmp_path / "none.db")))
    assert "--demo-data" in str(info.value)


def test_windows_from_the_command_line(store_path: Path) -> None:
    ctx = cli.build_context(_args("--db", str(store_path), "--baseline", "2026-01-05/2026-01-07",
                                  "--current", "2026-11-20/2026-11-22"))
    assert isinstance(ctx, Context)
    assert ctx.baseline.end_ns - ctx.baseline.start_ns == 3 * NS_PER_DAY
    ctx.store.close()
    with pytest.raises(IxmeterError, match="FROM/TO"):
        cli.build_context(_args("--db", str(store_path), "--baseline", "2026-01-05"))
    with pytest.raises(IxmeterError, match="YYYY-MM-DD"):
        cli.build_context(_args("--db", str(store_path), "--current", "20261120/x"))
    ctx = cli.build_context(_args("--db", str(store_path), "--current",
                                  "2026-11-20T00:00:00Z/2026-11-20T06:00:00Z"))
    assert isinstance(ctx, Context)
    assert ctx.current.end_ns - ctx.current.start_ns == NS_PER_DAY // 4
    ctx.store.close()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    from analyzer.store import open_store

    path = tmp_path / "empty.db"
    open_store(path).close()
    return path
