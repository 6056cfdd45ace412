"""The demo's plan: phases on whole minutes, the settling minute, the cut-down inventory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from inventory.loader import default_inventory, load
from ixmeter.demo.plan import (
    DEFAULT_DURATION_S,
    DEFAULT_SITES,
    MIN_EDGE_S,
    MINUTE_NS,
    NS,
    DemoError,
    demo_inventory,
    iso_window,
    plan_timeline,
    read_inventory,
    write_inventory,
)

T0 = 1_795_000_000 * NS + 17 * NS  # 17 s past a minute boundary (1_795_000_000 % 60 == 40)
M0 = 1_795_000_000 // 60 * 60 * NS  # that minute's start


def test_default_run_covers_ten_units_with_no_short_edge() -> None:
    for second in range(60):
        t = plan_timeline(M0 + second * NS, DEFAULT_DURATION_S, lead_s=0)
        assert t.stop_ns - t.start_ns >= int(DEFAULT_DURATION_S * NS)
        assert t.minutes >= 10, second  # the analyzer's MIN_UNITS
        first, last = t.edges_s()
        assert min(first, last) >= MIN_EDGE_S, second
        a, b = t.window
        assert a % MINUTE_NS == 0
        assert b % MINUTE_NS == 0
        assert a <= t.start_ns < t.stop_ns <= b
        assert t.start_ns - (M0 + second * NS) <= MIN_EDGE_S * NS  # a short wait at most


def test_both_windows_are_the_same_minutes() -> None:
    t = plan_timeline(T0, 555)
    assert t.baseline == t.current == t.window


def test_a_start_too_late_in_a_minute_waits_for_the_next() -> None:
    t = plan_timeline(M0 + 50 * NS, 555, lead_s=0)
    assert t.start_ns == M0 + MINUTE_NS
    assert t.edges_s() == (60.0, 15.0)


def test_a_short_last_minute_is_filled_up() -> None:
    t = plan_timeline(M0, 65, lead_s=0)  # would leave 5 s in the second minute
    assert t.stop_ns == M0 + 2 * MINUTE_NS


@pytest.mark.parametrize("duration", [30, 45])
def test_short_runs_fit_one_minute(duration: float) -> None:
    t = plan_timeline(M0 + 5 * NS, duration, lead_s=0)
    assert t.minutes == 1


def test_phases() -> None:
    t = plan_timeline(T0, 300)
    assert [t.phase(x) for x in (T0, t.start_ns, t.stop_ns)] == [
        "warm-up", "measuring", "done"]


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
    (domain,) = inv.clock_domains  # the testbed's hosts read one kernel clock
    assert sorted(domain.probes) == sorted(p.id for p in inv.probes)
    assert "one Linux kernel" in domain.basis


def test_unknown_site_names_it() -> None:
    with pytest.raises(DemoError, match="no-such-site"):
        demo_inventory(read_inventory(default_inventory()), ["cs-yungu", "no-such-site"])


def test_a_single_probe_is_refused() -> None:
    with pytest.raises(DemoError, match="1 probe"):
        demo_inventory(read_inventory(default_inventory()), ["cs-tianyi-zn"])
