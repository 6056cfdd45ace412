"""The probe's ``/metrics`` (hand-written exposition text) and its heartbeat counters: every
name from the fixed set of ``ixmeter.core.heartbeat``, and text ``promtool check metrics``
accepts."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import httpx
import pytest
import trio

from ixmeter.core import heartbeat
from ixmeter.core.record import ErrorKind, Status
from probes.clock import ClockStatus
from probes.icmp.session import EchoStatistics
from probes.metrics import (
    LAG_BUCKETS_S,
    AgentState,
    Histogram,
    ProbeMetrics,
    StampPath,
    heartbeat_counters,
    render,
    serve_metrics,
)
from probes.spool import SpoolStatus
from tests.conftest import promtool_problems
from tests.probes.test_spool import result

PROBES = Path(__file__).parents[2] / "probes"


def _metrics() -> ProbeMetrics:
    m = ProbeMetrics()
    for i in range(6):
        m.observe(result(i, lost=i % 3 == 0))
    m.observe(dataclasses.replace(result(6), status=Status.ERROR, rtt_ns=None,
                                  error=ErrorKind.SEND_ERROR, error_detail="ENETUNREACH"))
    return m


def _state() -> AgentState:
    lag = Histogram(LAG_BUCKETS_S)
    for seconds in (0.0, 0.002, 0.02, 3.0):
        lag.observe(seconds)
    return AgentState(
        SpoolStatus(12, {"refused": (2, 150), "unreadable": (1, 1)}, 4096,
                    {"max_bytes": 7}),
        {"late": 2, "queue_full": 1}, {"refused": 2, "server": 1}, 40, 3,
        ClockStatus(True, 1_500_000, 200_000, "chrony", "ntp"), lag,
        [StampPath("cs-yungu", "198.18.65.10", 3, 1, 2, 0, 4),
         StampPath("cs-cmcc", "198.18.66.10", None, None, 0, 1)],
        {17: 5})


async def test_served_metrics_show_set_aside_and_pass_promtool() -> None:
    def text() -> str:
        return render(_metrics(), _state())

    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_metrics, "127.0.0.1", 0, text)
        async with httpx.AsyncClient() as client:
            served = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        nursery.cancel_scope.cancel()
    for line in ('ixmeter_probe_set_aside_batches{reason="refused"} 2',
                 'ixmeter_probe_set_aside_results{reason="refused"} 150',
                 'ixmeter_probe_set_aside_batches{reason="too_large"} 0',
                 'ixmeter_probe_set_aside_results{reason="unreadable"} 1',
                 'ixmeter_probe_upload_errors_total{reason="refused"} 2',
                 "ixmeter_probe_spool_depth 12"):
        assert line in served.splitlines()
    assert await promtool_problems(served) == ""


async def test_what_an_operator_expects_is_there_and_passes_promtool() -> None:
    """The issue's finding: no per-path sent/lost counters or RTT histogram, no clock state,
    no scheduler lag, no STAMP forward/backward loss, no spool bytes."""
    lines = render(_metrics(), _state()).splitlines()
    path = 'method="icmp",dst_site="cs-yungu",dst="198.18.65.10"'
    stamp = 'dst_site="cs-yungu",dst="198.18.65.10"'
    for line in (f"ixmeter_probe_sent_total{{{path}}} 6",
                 f"ixmeter_probe_lost_total{{{path}}} 2",
                 f'ixmeter_probe_rtt_seconds_bucket{{{path},le="5e-05"}} 0',
                 f'ixmeter_probe_rtt_seconds_bucket{{{path},le="0.001"}} 0',
                 f'ixmeter_probe_rtt_seconds_bucket{{{path},le="0.0025"}} 4',
                 f'ixmeter_probe_rtt_seconds_bucket{{{path},le="10"}} 4',
                 f'ixmeter_probe_rtt_seconds_bucket{{{path},le="+Inf"}} 4',
                 f"ixmeter_probe_rtt_seconds_count{{{path}}} 4",
                 'ixmeter_probe_clock_synchronised{source="chrony",discipline="ntp"} 1',
                 "ixmeter_probe_clock_max_error_seconds 0.0015",
                 'ixmeter_probe_schedule_lag_seconds_bucket{le="0.01"} 2',
                 'ixmeter_probe_schedule_lag_seconds_bucket{le="+Inf"} 4',
                 "ixmeter_probe_spool_bytes 4096",
                 'ixmeter_probe_spool_dropped_total{reason="max_bytes"} 7',
                 'ixmeter_probe_spool_dropped_total{reason="disk_full"} 0',
                 f"ixmeter_probe_stamp_forward_lost_total{{{stamp}}} 3",
                 f"ixmeter_probe_stamp_backward_lost_total{{{stamp}}} 1",
                 f"ixmeter_probe_stamp_reordered_total{{{stamp}}} 2",
                 f"ixmeter_probe_stamp_unreachable_total{{{stamp}}} 4",
                 'ixmeter_probe_icmp_foreign_errors_total{protocol="17"} 5',
                 "ixmeter_probe_route_changes_total 3"):
        assert line in lines, line
    assert not any(line.startswith('ixmeter_probe_stamp_forward_lost_total{dst_site="cs-cmcc"')
                   for line in lines)  # a stateless reflector: not known, not 0
    assert await promtool_problems("\n".join(lines) + "\n") == ""


async def test_promtool_finds_what_the_issue_found() -> None:
    """The check is real: the old collector gauge fails it."""
    bad = "# HELP ixmeter_probe_counter x\n# TYPE ixmeter_probe_counter gauge\n" \
          'ixmeter_probe_counter{name="sent"} 1\n'
    assert "should not include type 'counter'" in await promtool_problems(bad)


def test_heartbeat_counters_are_the_fixed_set(caplog: pytest.LogCaptureFixture) -> None:
    counters = heartbeat_counters(_metrics(), {"late": 3, "teleported": 1})
    assert set(counters) <= set(heartbeat.BY_NAME)
    assert {f"local_drops.{c}" for c in heartbeat.LOCAL_DROP_CAUSES} <= set(counters)
    assert (counters["sent"], counters["lost"], counters["errors"]) == (6, 2, 1)
    assert (counters["local_drops.late"], counters["local_drops.stray"]) == (3, 0)
    heartbeat.encode(heartbeat.Heartbeat(None, None, counters))  # what decode accepts
    heartbeat_counters(_metrics(), {"teleported": 2})
    [record] = [r for r in caplog.records if "teleported" in r.getMessage()]
    assert record.levelno == logging.ERROR  # once, not at every heartbeat


def test_every_local_drop_cause_in_the_probe_is_in_the_fixed_set() -> None:
    """The causes counted in ``probes/`` (``self.local["..."]``, the scheduler's ``_drop``, the
    echo session's ``local_drops()``) are all heartbeat names, so none is left out of a
    heartbeat."""
    found: set[str] = set()
    for path in PROBES.rglob("*.py"):
        for line in path.read_text().splitlines():
            if re.search(r"\blocal\[|_drop\(job", line):
                found.update(re.findall(r'"(\w+)"', line))
    every = {f.name: 1 for f in dataclasses.fields(EchoStatistics) if f.name != "foreign"}
    found.update(EchoStatistics(**every, foreign={}).local_drops())
    assert {"queue_full", "send_error", "late", "stray", "duplicate"} <= found
    assert found <= set(heartbeat.LOCAL_DROP_CAUSES)
