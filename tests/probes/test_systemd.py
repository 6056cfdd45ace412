"""The systemd units shipped in ``probes/systemd``: ``systemd-analyze verify`` finds nothing,
and the probe runs with CAP_NET_RAW only (the issue's finding: the units in the docs were
untested; the one there had an inline comment systemd read as directory names)."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool

UNITS = sorted((Path(__file__).parents[2] / "probes" / "systemd").glob("*.service"))


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_unit_verifies_clean(unit: Path, tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    ixmeter = Path(sys.executable).with_name("ixmeter")  # ExecStart must exist to verify
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("/opt/ixmeter/bin/ixmeter", str(ixmeter)))
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""  # warnings too (systemd-analyze exits 0 on most)


def test_the_probe_holds_only_cap_net_raw_and_reloads_with_sighup() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(Path(__file__).parents[2] / "probes" / "systemd" / "ixmeter-probe.service")
    service = parser["Service"]
    assert service["AmbientCapabilities"] == service["CapabilityBoundingSet"] == "CAP_NET_RAW"
    assert service["User"] != "root"
    assert "-HUP" in service["ExecReload"]
    assert "probe run --config" in service["ExecStart"]


def test_units_are_installed_with_the_package() -> None:
    import importlib.resources

    files = importlib.resources.files("probes") / "systemd"
    assert {p.name for p in files.iterdir()} >= {u.name for u in UNITS}
