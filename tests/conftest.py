"""Shared test fixtures and the ``root`` marker's automatic skip."""

from __future__ import annotations

import os
import shutil

import pytest

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
