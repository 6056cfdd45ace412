"""Heartbeats over real HTTP: a fixed set of counter names, stored per probe, exported on the
collector's ``/metrics`` under names ``promtool check metrics`` accepts."""

from __future__ import annotations

import json

import pytest

from ixmeter.core import heartbeat
from ixmeter.core.wire import encode_columns
from tests.conftest import promtool_problems
from tests.store.test_collector import (
    KEY_A,
    KEY_B,
    PROBE_A,
    PROBE_B,
    Server,
    _batch,
    db_path,
    server,
)

__all__ = ["db_path", "server"]  # fixtures, from test_collector
PATH_A = f"/v1/probes/{PROBE_A}/heartbeat"


def _body(**obj: object) -> bytes:
    return json.dumps(obj).encode()


async def test_heartbeat_stored_and_exported(server: Server) -> None:
    counters = {"sent": 3, "local_drops.late": 2, "set_aside_batches.refused": 1,
                "set_aside_results.refused": 40}
    body = heartbeat.encode(heartbeat.Heartbeat("0.1.0", 7, counters))
    assert (await server.post(KEY_A, PROBE_A, body, path=PATH_A)).status_code == 200
    [health] = server.store.probe_health()
    assert (health.probe_id, health.spool_depth, health.version) == (PROBE_A, 7, "0.1.0")
    assert health.counters == counters
    for line, value in ((f'ixmeter_collector_probe_spool_depth{{probe="{PROBE_A}"}}', 7),
                        (f'ixmeter_collector_probe_sent_total{{probe="{PROBE_A}"}}', 3),
                        ('ixmeter_collector_probe_local_drops_total{cause="late",'
                         f'probe="{PROBE_A}"}}', 2),
                        (f'ixmeter_collector_probe_set_aside_results{{probe="{PROBE_A}",'
                         'reason="refused"}', 40)):
        assert await server.metric(line) == value
    other = await server.post(KEY_B, PROBE_B, body, path=PATH_A)  # B cannot beat for A
    assert other.status_code == 403


@pytest.mark.parametrize(("body", "status", "field"), [
    (b"not json", 400, "body"),
    (b"[1]", 400, "body"),
    (b'{"spool_depth": 1, "spool_depth": 2}', 400, "body"),
    (_body(spool_depth=-1), 422, "spool_depth"),
    (_body(spool_depth=2**63), 422, "spool_depth"),
    (_body(spool_depth=True), 422, "spool_depth"),
    (_body(version=7), 422, "version"),
    (_body(version="x" * 65), 422, "version"),
    (_body(counters=[1]), 422, "counters"),
    (_body(counters={"sent": 1.5}), 422, "counters.sent"),
    (_body(counters={"sent": False}), 422, "counters.sent"),
    (_body(counters={"sent": -1}), 422, "counters.sent"),
    (_body(counters={"bogus": 1}), 422, "counters.bogus"),
    (_body(counters={"\ud800": 1}), 422, "counters.'\\ud800'"),
    (_body(uptime=1), 422, "uptime"),
    (b'{"counters": {"sent": NaN}}', 400, "body"),
])
async def test_bad_heartbeat_names_the_field_and_stores_nothing(
        server: Server, body: bytes, status: int, field: str) -> None:
    response = await server.post(KEY_A, PROBE_A, body, path=PATH_A)
    assert (response.status_code, response.json()["field"]) == (status, field)
    assert server.store.probe_health() == []


async def test_heartbeat_body_is_bounded(server: Server) -> None:
    names = {f"n{i:06d}": i for i in range(100_000)}  # the 5.6 MB /metrics
    response = await server.post(KEY_A, PROBE_A, _body(counters=names), path=PATH_A)
    assert (response.status_code, response.json()["field"]) == (413, "body")
    assert str(heartbeat.MAX_BODY) in response.json()["error"]
    assert server.store.probe_health() == []


async def test_collector_metrics_pass_promtool(server: Server) -> None:
    full = heartbeat.Heartbeat("0.1.0", 5, {c.name: 1 for c in heartbeat.COUNTERS})
    for key, probe in ((KEY_A, PROBE_A), (KEY_B, PROBE_B)):
        path = f"/v1/probes/{probe}/heartbeat"
        assert (await server.post(key, probe, heartbeat.encode(full), path=path)).is_success
    await server.post(KEY_A, PROBE_A, encode_columns(_batch()))
    await server.post(KEY_A, PROBE_A, b"{}")  # a refusal: the rejected counter has a sample
    text = (await server.client.get(server.url + "/metrics")).text
    assert "ixmeter_collector_probe_set_aside_batches" in text
    assert "ixmeter_probe_" not in text  # the probe's own names keep their meaning
    assert await promtool_problems(text) == ""
