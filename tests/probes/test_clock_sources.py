"""probes.clock_sources: chrony and PTP clock evidence, parsed and published, never per probe."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from probes import clock
from probes.clock_sources import (
    ClockMonitor,
    parse_chrony_tracking,
    parse_pmc_time_status,
    phc_offset_ns,
    ptp_status,
)
from probes.stamp.codec import SYNC_FREE_RUNNING, SYNC_NTP, SYNC_PTP
from probes.stamp.net import sync_source_of

# chronyc -c -n tracking, the CSV of the documented "tracking" report (chronyc(1))
CHRONY_NTP = ("CB00710F,203.0.113.15,3,1485510557.123456789,-0.000006523,-0.000006747,"
              "0.000035822,-3.225,-0.000,0.129,0.013639022,0.001100737,64.2,Normal\n")
CHRONY_PHC = ("50484330,PHC0,1,1485510557.1,0.000000012,0.000000010,0.000000030,"
              "1.0,0.0,0.01,0.000000000,0.000001000,1.0,Normal\n")
CHRONY_UNSYNC = ("00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,"
                 "0.000,1.000000000,1.000000000,0.0,Not synchronised\n")
PMC = """sending: GET TIME_STATUS_NP
\t001122.fffe.334455-0 seq 0 RESPONSE MANAGEMENT TIME_STATUS_NP
\t\tmaster_offset              -84
\t\tingress_time               1700000000000000000
\t\tcumulativeScaledRateOffset +0.000000000
\t\tgmPresent                  true
\t\tgmIdentity                 001122.fffe.334455
"""


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    yield
    clock.publish_status(None, 0)


def test_chrony_bound_is_root_distance_plus_offset() -> None:
    st = parse_chrony_tracking(CHRONY_NTP)
    assert st is not None
    assert st.synced
    assert st.source == "chrony"
    assert st.discipline == "ntp"
    # 6.523 us + 13.639022 ms / 2 + 1.100737 ms (RFC 5905 §11.2 root distance)
    assert st.max_error_ns == round((0.000006523 + 0.013639022 / 2 + 0.001100737) * 1e9)
    assert sync_source_of(st) == SYNC_NTP


def test_chrony_on_a_phc_refclock_is_ptp_and_unsynced_is_free_running() -> None:
    phc = parse_chrony_tracking(CHRONY_PHC)
    assert phc is not None
    assert phc.discipline == "ptp"
    assert sync_source_of(phc) == SYNC_PTP
    down = parse_chrony_tracking(CHRONY_UNSYNC)
    assert down is not None
    assert not down.synced
    assert sync_source_of(down) == SYNC_FREE_RUNNING


@pytest.mark.parametrize("text", ["", "506 Cannot talk to daemon", "a,b,c", "x" * 200])
def test_chrony_garbage_is_no_reading(text: str) -> None:
    assert parse_chrony_tracking(text) is None


def test_pmc_time_status() -> None:
    assert parse_pmc_time_status(PMC) == (-84, True)
    assert parse_pmc_time_status("sending: GET TIME_STATUS_NP\n") is None
    st = ptp_status(-84, True, 300, 40)
    assert st.synced
    assert st.discipline == "ptp"
    assert st.max_error_ns == 84 + 300 + 20 + 1
    assert not ptp_status(-84, False, 300, 40).synced


def test_phc_offset_of_a_missing_device_is_none() -> None:
    assert phc_offset_ns("/dev/no-such-ptp") is None


def test_monitor_publishes_chrony_then_falls_back_to_ptp_then_kernel() -> None:
    answers: dict[str, str | None] = {"chronyc": CHRONY_NTP, "pmc": PMC}
    calls: list[str] = []

    def runner(argv: Sequence[str]) -> str | None:
        calls.append(argv[0])
        return answers[argv[0]]

    mon = ClockMonitor(runner=runner, ptp_device="/dev/no-such-ptp")
    assert mon.read() is not None
    assert clock.sync_status().source == "chrony"
    answers["chronyc"] = None
    got = mon.read()
    assert got is not None
    assert got.source == "ptp"
    assert not got.synced
    answers["pmc"] = None
    assert mon.read() is None
    assert clock.sync_status().source in ("adjtimex", "unknown")
    assert calls == ["chronyc", "chronyc", "pmc", "chronyc", "pmc"]
    for _ in range(100):  # STAMP sessions read the published evidence: no further runs
        clock.sync_status()
    assert len(calls) == 5
