"""``ixmeter demo`` end to end on the emulated network (root): a short run must store results in
both copies of the network, write the whole report, print the verdict table and leave nothing
behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool

INSTANCE = "demotest"
REPORT_FILES = ("report.html", "report.pdf", "report.json", "verdicts.csv")


def _alive(pid: int) -> bool:
    try:
        return b"ixmeter" in Path(f"/proc/{pid}/cmdline").read_bytes() or \
            b"testbed" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in out.stdout.splitlines()
            if line.startswith(f"ixm-{INSTANCE}-")]


@pytest.mark.root
def test_short_demo_end_to_end(tmp_path: Path) -> None:
    require_tool("ip")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "ixmeter.cli", "demo", "--duration", "30", "--no-dashboard",
         "--out", str(out), "--instance", INSTANCE],
        capture_output=True, text=True, timeout=300, check=False,
        cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((out / "demo.json").read_text())
    assert summary["mode"] == "netns"
    assert summary["stored"]["baseline"] > 1000
    assert summary["stored"]["current"] > 1000
    for name in REPORT_FILES:
        assert (out / "report" / name).stat().st_size > 0, name
    report = json.loads((out / "report" / "report.json").read_text())
    assert {v["target"] for v in report["verdicts"]} >= {"hn-inter-carrier-latency",
                                                          "hn-inter-carrier-loss"}
    assert "target" in proc.stdout
    assert "verdicts per target:" in proc.stdout
    assert "reproduce it: ixmeter report" in proc.stdout
    assert "inter-carrier median RTT: baseline (detour)" in proc.stdout
    assert _namespaces() == []
    pids = [*summary["pids"].values(), *summary["testbed_pids"]]
    assert len(pids) == 2 * (9 * 2 + 2) + 2  # per copy: probes, reflectors, collector, bridge
    assert [p for p in pids if _alive(p)] == []
    for role in ("baseline", "current"):
        assert not (out / "run" / role / "collector.sock").exists()
    for suffix in ("b", "c"):
        assert not Path(f"/run/ixmeter-testbed/{INSTANCE}-{suffix}").exists()


def test_unprivileged_loopback_mode(tmp_path: Path) -> None:
    """The mode a non-root user gets (forced here with --mode loopback, which is the same code
    path): STAMP through the testbed's UDP delay line, announced as such, and the OWD rows
    come from what was measured."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "ixmeter.cli", "demo", "--mode", "loopback", "--duration", "30",
         "--no-dashboard", "--out", str(out), "--instance", "demotestlo"],
        capture_output=True, text=True, timeout=300, check=False,
        cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "UNPRIVILEGED LOOPBACK MODE" in proc.stdout
    summary = json.loads((out / "demo.json").read_text())
    assert summary["mode"] == "loopback"
    assert summary["stored"]["baseline"] > 100
    assert summary["stored"]["current"] > 100
    report = json.loads((out / "report" / "report.json").read_text())
    owd = [v for v in report["verdicts"] if v["target"] == "sd-intra-city-owd"]
    assert owd
    assert all(v["type_p"].startswith("udp/v4/") for v in owd)
    assert [p for p in summary["pids"].values() if _alive(p)] == []
