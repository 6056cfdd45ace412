"""The probe's counters and ``/metrics`` in the Prometheus text exposition format (0.0.4),
written by hand so the probe host needs no prometheus-client.

Counted per method: probes sent, received, lost (RFC 7680 §2.4: not received within Tmax) and
errors by kind; local drops by cause (queue full, send error, late, duplicate) apart from
network loss (STYLE.md §6); spool depth, batches and results set aside in the spool by reason
(``ixmeter.heartbeat.SET_ASIDE_REASONS``), upload errors and the last RTT per target.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping

import trio

from ixmeter.heartbeat import (
    LOCAL_DROP_CAUSES,
    SET_ASIDE_BATCHES_HELP,
    SET_ASIDE_REASONS,
    SET_ASIDE_RESULTS_HELP,
)
from ixmeter.record import ErrorKind, Result, Status
from probes.spool import SpoolStatus

_NEVER_LEFT = (ErrorKind.LOCAL_DROP, ErrorKind.SEND_ERROR)
_UNNAMED: set[str] = set()  # local drop causes already logged as missing from the fixed set
log = logging.getLogger("ixmeter.probe.metrics")


class ProbeMetrics:
    """Counters fed with every result the agent emits."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.lost: Counter[str] = Counter()
        self.errors: Counter[tuple[str, str]] = Counter()
        self.last_rtt_ns: dict[tuple[str, str], int] = {}

    def observe(self, r: Result) -> None:
        method = r.method.value
        if r.status is Status.ERROR and r.error in _NEVER_LEFT:
            self.errors[(method, str(r.error))] += 1
            return
        self.sent[method] += 1
        if r.status is Status.RECEIVED:
            self.received[method] += 1
            if r.rtt_ns is not None:
                self.last_rtt_ns[(method, r.dst_addr)] = r.rtt_ns
        elif r.status is Status.LOST:
            self.lost[method] += 1
        else:
            self.errors[(method, str(r.error))] += 1

    def counters(self) -> dict[str, int]:
        """Flat totals for the heartbeat."""
        return {"sent": sum(self.sent.values()), "received": sum(self.received.values()),
                "lost": sum(self.lost.values()), "errors": sum(self.errors.values())}


def heartbeat_counters(m: ProbeMetrics, local_drops: Mapping[str, int]) -> dict[str, int]:
    """The totals and every local-drop cause (0 if none) under their heartbeat names
    (:data:`ixmeter.heartbeat.COUNTERS`). A cause outside that fixed set is a bug: logged once,
    left out so the heartbeat itself still goes through (it stays on ``/metrics``)."""
    counters = m.counters()
    counters.update({f"local_drops.{c}": local_drops.get(c, 0) for c in LOCAL_DROP_CAUSES})
    for cause in sorted(set(local_drops) - set(LOCAL_DROP_CAUSES) - _UNNAMED):
        _UNNAMED.add(cause)
        log.error("local drop cause %r is not in ixmeter.heartbeat.LOCAL_DROP_CAUSES: not "
                  "reported in heartbeats", cause)
    return counters


def _labels(**kv: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in kv.items())
    return "{" + inner + "}" if inner else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(m: ProbeMetrics, *, local_drops: Mapping[str, int], spool: SpoolStatus,
           upload_errors: Mapping[str, int], uploaded: int, route_changes: int = 0) -> str:
    """The exposition text: HELP/TYPE lines, then samples."""
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    for name, counter, text in (("sent", m.sent, "probes that left the host"),
                                ("received", m.received, "probes answered within Tmax"),
                                ("lost", m.lost, "probes not answered within Tmax")):
        family(f"ixmeter_probe_{name}_total", "counter", text,
               [(_labels(method=k), v) for k, v in sorted(counter.items())])
    family("ixmeter_probe_errors_total", "counter", "error results by method and kind",
           [(_labels(method=a, kind=b), v) for (a, b), v in sorted(m.errors.items())])
    family("ixmeter_probe_local_drops_total", "counter",
           "local drops by cause, apart from network loss",
           [(_labels(cause=k), v) for k, v in sorted(local_drops.items())])
    family("ixmeter_probe_spool_depth", "gauge", "results not yet acknowledged by the collector",
           [("", spool.depth)])
    for i, (what, text) in enumerate((("batches", SET_ASIDE_BATCHES_HELP),
                                      ("results", SET_ASIDE_RESULTS_HELP))):
        family(f"ixmeter_probe_set_aside_{what}", "gauge", text,
               [(_labels(reason=r), spool.set_aside.get(r, (0, 0))[i])
                for r in SET_ASIDE_REASONS])
    family("ixmeter_probe_uploaded_total", "counter", "results acknowledged by the collector",
           [("", uploaded)])
    family("ixmeter_probe_upload_errors_total", "counter", "failed uploads by reason",
           [(_labels(reason=k), v) for k, v in sorted(upload_errors.items())])
    family("ixmeter_probe_route_changes_total", "counter", "traceroute route changes",
           [("", route_changes)])
    family("ixmeter_probe_last_rtt_seconds", "gauge", "last round-trip delay per target",
           [(_labels(method=a, dst=b), v / 1e9) for (a, b), v in sorted(m.last_rtt_ns.items())])
    return "\n".join(out) + "\n"


async def serve_metrics(bind: str, port: int, text: Callable[[], str], *,
                        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """A minimal HTTP/1.0 server answering ``GET /metrics``; reports the bound port."""

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            with trio.move_on_after(5):
                request = await stream.receive_some(4096)
                path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
                if path == b"/metrics":
                    body, status = text().encode(), b"200 OK"
                else:
                    body, status = b"not found: try /metrics\n", b"404 Not Found"
                head = (b"HTTP/1.0 " + status + b"\r\nContent-Type: text/plain; version=0.0.4"
                        b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
                await stream.send_all(head + body)

    listeners = await trio.open_tcp_listeners(port, host=bind)
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)
