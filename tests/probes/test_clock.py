"""probes.clock: NTP 64-bit conversions (RFC 5905 §6), step check (RFC 2681 §2.5), adjtimex."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes import clock
from probes.clock import (
    NTP_UNIX_OFFSET_S,
    ntp_diff_ns,
    ntp_to_unix_ns,
    ptp_to_unix_ns,
    stepped,
    unix_ns_to_ntp,
    unix_ns_to_ptp,
)

_NS = 1_000_000_000


@pytest.mark.parametrize(
    ("unix_ns", "ntp"),
    [
        (0, NTP_UNIX_OFFSET_S << 32),
        (500_000_000, (NTP_UNIX_OFFSET_S << 32) | 0x80000000),
        (-NTP_UNIX_OFFSET_S * _NS, 0),  # 1900-01-01, the NTP prime epoch
        (1, (NTP_UNIX_OFFSET_S << 32) | 4),  # 1 ns = 4.29 units, rounded to nearest
        # 2036-02-07T06:28:16Z: era 1 begins, seconds wrap to 0 (RFC 5905 §6, Figure 4)
        ((1 << 32) * _NS - NTP_UNIX_OFFSET_S * _NS, 0),
    ],
)
def test_unix_to_ntp_known_values(unix_ns: int, ntp: int) -> None:
    assert unix_ns_to_ntp(unix_ns) == ntp


def test_fraction_never_overflows() -> None:
    assert unix_ns_to_ntp(_NS - 1) == (NTP_UNIX_OFFSET_S << 32) | 0xFFFFFFFC


def test_diff_across_2036_era_wrap() -> None:
    wrap = (1 << 32) * _NS - NTP_UNIX_OFFSET_S * _NS
    before, after = unix_ns_to_ntp(wrap - 1_000_000), unix_ns_to_ntp(wrap + 2_000_000)
    assert after < before  # the raw values wrapped
    assert ntp_diff_ns(after, before) == 3_000_000
    assert ntp_diff_ns(before, after) == -3_000_000


def test_ntp_to_unix_with_pivot_picks_nearest_era() -> None:
    wrap = (1 << 32) * _NS - NTP_UNIX_OFFSET_S * _NS
    t = wrap + 10 * _NS
    assert ntp_to_unix_ns(unix_ns_to_ntp(t), pivot_unix_ns=wrap) == t
    assert ntp_to_unix_ns(unix_ns_to_ntp(0)) == 0


@settings(deadline=None)  # a shared 2-vCPU CI machine stalls for ms at times
@given(st.integers(min_value=0, max_value=4_000_000_000 * _NS))
def test_ntp_round_trip_within_half_unit(unix_ns: int) -> None:
    back = ntp_to_unix_ns(unix_ns_to_ntp(unix_ns), pivot_unix_ns=unix_ns)
    assert abs(back - unix_ns) <= 1


@settings(deadline=None)  # a shared 2-vCPU CI machine stalls for ms at times
@given(st.integers(min_value=0, max_value=3_000_000_000 * _NS),
       st.integers(min_value=-10**15, max_value=10**15))
def test_diff_matches_unix_difference(t: int, d: int) -> None:
    assert abs(ntp_diff_ns(unix_ns_to_ntp(t + d), unix_ns_to_ntp(t)) - d) <= 1


def test_ptp_round_trip() -> None:
    t = 1_700_000_000 * _NS + 123_456_789
    assert unix_ns_to_ptp(t) == (1_700_000_000 << 32) | 123_456_789
    assert ptp_to_unix_ns(unix_ns_to_ptp(t)) == t


@pytest.mark.parametrize(
    ("wall1", "mono1", "expected"),
    [(1_000_000, 1_000_000, False), (1_050_000, 1_000_000, False),
     (1_050_001, 1_000_000, True), (900_000, 1_000_000, True)],
)
def test_stepped_50us_policy(wall1: int, mono1: int, expected: bool) -> None:
    assert stepped(0, 0, wall1, mono1) is expected


def test_status_from_timex() -> None:
    ok = clock.status_from_timex(0, 0x2000, 1500, 200)
    assert ok == clock.ClockStatus(True, 1_500_000, 200_000, "adjtimex")
    assert not clock.status_from_timex(0, clock.STA_UNSYNC, 1, 1).synced
    assert not clock.status_from_timex(clock.TIME_ERROR, 0, 1, 1).synced


def test_sync_status_reads_kernel() -> None:
    st_ = clock.sync_status()
    assert st_.max_error_ns >= 0
    assert st_.est_error_ns >= 0
    assert isinstance(st_.synced, bool)


def test_system_clock_moves_forward() -> None:
    c = clock.SystemClock()
    m0, w0 = c.mono_ns(), c.wall_ns()
    assert c.mono_ns() >= m0
    assert w0 > 1_600_000_000 * _NS


def test_sync_status_never_forks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's finding: ``ctypes.util.find_library`` forked ``ldconfig -p`` on every call
    (once a second per STAMP session, on the event loop)."""
    import subprocess

    def no_fork(*_a: object, **_k: object) -> None:
        raise AssertionError("sync_status() started a process")

    monkeypatch.setattr(subprocess, "Popen", no_fork)
    monkeypatch.setattr(os, "fork", no_fork)
    if hasattr(clock, "_CACHE"):
        monkeypatch.setattr(clock, "_CACHE", clock._Cached())  # a cold cache reads the kernel
    for _ in range(50):
        assert clock.sync_status().source in ("adjtimex", "unknown")


def test_sync_status_prefers_published_evidence() -> None:
    chrony = clock.ClockStatus(True, 1_000, 500, "chrony", "ntp")
    clock.publish_status(chrony, 10**12)
    try:
        assert clock.sync_status() is chrony
    finally:
        clock.publish_status(None, 0)
    assert clock.sync_status().source in ("adjtimex", "unknown")
