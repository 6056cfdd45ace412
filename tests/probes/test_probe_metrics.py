"""The probe's ``/metrics`` (hand-written exposition text) and its heartbeat counters: every
name from the fixed set of ``ixmeter.heartbeat``, and text ``promtool check metrics`` accepts."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import httpx
import pytest
import trio

from ixmeter import heartbeat
from ixmeter.record import ErrorKind, Status
from probes.metrics import ProbeMetrics, heartbeat_counters, render, serve_metrics
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


async def test_served_metrics_show_set_aside_and_pass_promtool() -> None:
    spool = SpoolStatus(12, {"refused": (2, 150), "unreadable": (1, 1)})

    def text() -> str:
        return render(_metrics(), local_drops={"late": 2, "queue_full": 1}, spool=spool,
                      upload_errors={"refused": 2, "server": 1}, uploaded=40)

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
    """The causes counted in ``probes/`` (``self.local["..."]``, the scheduler's ``_drop``) are
    all heartbeat names, so none is left out of a heartbeat."""
    found: set[str] = set()
    for path in PROBES.rglob("*.py"):
        for line in path.read_text().splitlines():
            if re.search(r"\blocal\[|_drop\(job", line):
                found.update(re.findall(r'"(\w+)"', line))
    assert {"queue_full", "send_error", "late", "stray", "duplicate"} <= found
    assert found <= set(heartbeat.LOCAL_DROP_CAUSES)
