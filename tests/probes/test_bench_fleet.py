"""``bench.probe_fleet`` at smoke size: a few seconds, two sites of the testbed (root)."""

from __future__ import annotations

import os

import pytest


@pytest.mark.root
@pytest.mark.slow
def test_fleet_benchmark_smoke() -> None:
    from bench.probe_fleet import run

    out = run(12.0, 1.0, ["cs-yungu", "cz-ezone"], f"fleet{os.getpid() % 10000}")
    assert out["hosts"] == 6
    assert 0 < out["cpu_share"] < 2
    assert out["rss_peak_mib"] > 10
    received = {k: v for k, v in out["by_method_status"].items() if k.endswith("/received")}
    assert {"icmp/received", "stamp/received"} <= set(received)
    assert not any("local_drop" in k for k in out["errors"])
