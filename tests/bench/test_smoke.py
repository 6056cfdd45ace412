"""Every benchmark at smoke size: one that breaks fails here, not later in a README figure.

Each runs as its user runs it (``python -m bench.NAME``), with the arguments that make it take
seconds; figures are not checked (a shared machine's timings are not test results), only that
it ran to the end and printed its table. Benchmarks with a smoke test of their own:
bench.wire_decode, bench.probe_fleet, bench.dashboard_serve and bench.dashboard_load
(tests/analyzer, tests/probes, tests/dashboard).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE = {
    "analyzer_calibration": (["--trials", "3", "--minutes", "60"], "PASS rate"),
    "analyzer_calibration --loss": (["--loss", "--trials", "3"], "PASS rate"),
    "analyzer_year": (["--smoke"], "minute path"),
    "blob_codec": (["--smoke"], "IXB2"),
    "store_tiers": (["--paths", "5", "--minutes", "500"], "peak RSS of the process"),
    "store_ingest": (["--smoke"], "over HTTP into SQLite"),
    "collector_faults": (["--smoke"], "probes concurrently"),
    "collectors": (["--smoke"], "rollups equal, row for row and digest for digest"),
    "store_retention": (["--smoke"], "after a year"),
    "province": (["--smoke"], "growth table"),
    "sketch_codec": (["--smoke"], "same bytes and buckets every way"),
    "stamp_loopback": ([], "packets/s per core"),
    "probe_icmp": (["--smoke"], "## icmplib"),
}
NEEDS_ROOT = {"probe_icmp"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_benchmark_runs_at_smoke_size(name: str) -> None:
    module, *extra = name.split()
    if module in NEEDS_ROOT and os.geteuid() != 0:
        pytest.skip(f"bench.{module} opens raw ICMP sockets: run as root (CI does)")
    args, expected = SMOKE[name]
    done = subprocess.run([sys.executable, "-m", f"bench.{module}", *extra, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    if "needs a throwaway PostgreSQL" in done.stdout:
        pytest.skip(done.stdout.strip())
    assert expected in done.stdout, done.stdout[-3000:]
    assert "Traceback" not in done.stderr
