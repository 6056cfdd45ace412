"""Shared test fixtures and the ``root`` marker's automatic skip."""

from __future__ import annotations

import os
import shutil

import pytest
import trio

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
