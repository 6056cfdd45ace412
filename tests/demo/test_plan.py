"""The demo's plan: phases on whole minutes, the settling minute, the cut-down inventory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from inventory.loader import default_inventory, load
from ixmeter.demo.plan import (
    DEFAULT_SITES,
    MINUTE_NS,
    NS,
    DemoError,
    demo_inventory,
    iso_window,
    plan_timeline,
    read_inventory,
    write_inventory,
)

T0 = 1_795_000_000 * NS + 17 * NS  # 17 s past a minute boundary


def test_default_run_has_ten_minute_windows_and_a_settling_minute() -> None:
    t = plan_timeline(T0, 1260)
    assert t.baseline[1] - t.baseline[0] == 10 * MINUTE_NS
    assert t.current[1] - t.current[0] == 10 * MINUTE_NS
    assert t.settle == (t.baseline[1], t.baseline[1] + MINUTE_NS)
    assert t.switch_ns == t.baseline[1] + MINUTE_NS // 2
    for edge in (*t.baseline, *t.current):
        assert edge % MINUTE_NS == 0


def test_baseline_starts_after_the_warm_up() -> None:
    t = plan_timeline(T0, 1260, warmup_s=5)
    assert t.baseline[0] >= T0 + 5 * NS
    assert t.baseline[0] - T0 < 65 * NS


@pytest.mark.parametrize("duration", [30, 60, 119])
def test_short_runs_switch_on_a_boundary_without_settling(duration: float) -> None:
    t = plan_timeline(T0, duration)
    assert t.switch_ns == t.baseline[1] == t.current[0]
    assert t.switch_ns % MINUTE_NS == 0
    assert t.current[1] - t.baseline[0] == int(duration * NS) // 2 * 2


def test_phases() -> None:
    t = plan_timeline(T0, 300)
    assert [t.phase(x) for x in (T0, t.baseline[0], t.baseline[1], t.current[0],
                                 t.current[1])] == ["warm-up", "baseline", "settling",
                                                    "current", "done"]


@pytest.mark.parametrize("duration", [0, 29.9, float("nan"), float("inf") * -1])
def test_too_short_is_one_clear_error(duration: float) -> None:
    with pytest.raises(DemoError, match="too short"):
        plan_timeline(T0, duration)


def test_iso_window() -> None:
    start = int(datetime(2026, 11, 23, 22, 12, tzinfo=UTC).timestamp()) * NS
    assert iso_window((start, start + 10 * MINUTE_NS + 999)) == \
        "2026-11-23T22:12:00Z/2026-11-23T22:22:00Z"


def test_demo_inventory_keeps_targets_and_cuts_probes(tmp_path: Path) -> None:
    source = read_inventory(default_inventory())
    data = demo_inventory(source, DEFAULT_SITES, {"icmp": 2.0, "stamp": 1.0})
    path = tmp_path / "inv.yaml"
    write_inventory(data, path)
    inv = load(path)
    assert sorted({p.site for p in inv.probes}) == sorted(DEFAULT_SITES)
    assert len(inv.probes) == 9
    assert {s.method.value: s.rate_pps for s in inv.specs} == {"icmp": 2.0, "stamp": 1.0}
    assert [t.id for t in inv.policy_targets] == [t["id"] for t in source["policy_targets"]]
    assert len(source["probes"]) == 39  # the source mapping is not modified


def test_unknown_site_names_it() -> None:
    with pytest.raises(DemoError, match="no-such-site"):
        demo_inventory(read_inventory(default_inventory()), ["cs-yungu", "no-such-site"])


def test_a_single_probe_is_refused() -> None:
    with pytest.raises(DemoError, match="1 probe"):
        demo_inventory(read_inventory(default_inventory()), ["cs-tianyi-zn"])
