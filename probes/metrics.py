"""The probe's counters and ``/metrics`` in the Prometheus text exposition format (0.0.4),
written by hand so the probe host needs no prometheus-client.

Per path (method, destination site and address), as smokeping_prober and blackbox_exporter
give them: probes sent, received, lost (RFC 7680 §2.4: not received within Tmax) and a
round-trip delay histogram from 50 us to 10 s (RFC 2681 §2.4; STAMP's network RTT); errors by
kind; local drops by cause (queue full, send error, late, duplicate) apart from network loss
(STYLE.md §6); STAMP forward and backward loss (RFC 8762 §4, a stateful reflector's counter)
and reordering (RFC 4737 §3.3) per path; the clock's sync state and error bound; the
scheduler's lag behind plan (RFC 2330 §11.1.3); the spool's depth, bytes, drops by reason and
set-aside batches (``ixmeter.core.heartbeat``); uploads; route changes; ICMP errors about other
protocols' packets.
"""

from __future__ import annotations

import bisect
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import trio

from ixmeter.core.heartbeat import (
    LOCAL_DROP_CAUSES,
    SET_ASIDE_BATCHES_HELP,
    SET_ASIDE_REASONS,
    SET_ASIDE_RESULTS_HELP,
    SPOOL_DROP_REASONS,
    SPOOL_DROPPED_HELP,
)
from ixmeter.core.record import ErrorKind, Result, Status
from probes.clock import ClockStatus
from probes.spool import SpoolStatus

_NEVER_LEFT = (ErrorKind.LOCAL_DROP, ErrorKind.SEND_ERROR)
_UNNAMED: set[str] = set()  # local drop causes already logged as missing from the fixed set
# 50 us .. 10 s in 1-2.5-5 steps: loopback and a LAN at the bottom, Tmax-sized stalls at the top
RTT_BUCKETS_S = (50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1,
                 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS_S = (1e-4, 1e-3, 5e-3, 10e-3, 50e-3, 0.1, 0.5, 1.0, 5.0)
log = logging.getLogger("ixmeter.probe.metrics")

Path = tuple[str, str, str]  # method, destination site, destination address


class Histogram:
    """A cumulative histogram (Prometheus ``histogram``: ``_bucket{le}``, ``_sum``,
    ``_count``) over fixed upper bounds in seconds."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def lines(self, name: str, labels: Mapping[str, str]) -> list[str]:
        out, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f"{name}_bucket{_labels(**labels, le=le)} {total}")
        out.append(f"{name}_sum{_labels(**labels)} {self.sum:.9g}")
        out.append(f"{name}_count{_labels(**labels)} {total}")
        return out


class ProbeMetrics:
    """Counters fed with every result the agent emits, per path."""

    def __init__(self) -> None:
        self.sent: Counter[Path] = Counter()
        self.received: Counter[Path] = Counter()
        self.lost: Counter[Path] = Counter()
        self.errors: Counter[tuple[str, str]] = Counter()
        self.rtt: dict[Path, Histogram] = {}
        self.last_rtt_ns: dict[tuple[str, str], int] = {}

    def observe(self, r: Result) -> None:
        path = (r.method.value, r.dst_site, r.dst_addr)
        if r.status is Status.ERROR and r.error in _NEVER_LEFT:
            self.errors[(path[0], str(r.error))] += 1
            return
        self.sent[path] += 1
        if r.status is Status.RECEIVED:
            self.received[path] += 1
            if r.rtt_ns is not None:
                self._rtt(path).observe(r.rtt_ns / 1e9)
                self.last_rtt_ns[(path[0], r.dst_addr)] = r.rtt_ns
        elif r.status is Status.LOST:
            self.lost[path] += 1
        else:
            self.errors[(path[0], str(r.error))] += 1

    def _rtt(self, path: Path) -> Histogram:
        found = self.rtt.get(path)
        if found is None:
            found = self.rtt[path] = Histogram(RTT_BUCKETS_S)
        return found

    def counters(self) -> dict[str, int]:
        """Flat totals for the heartbeat."""
        return {"sent": sum(self.sent.values()), "received": sum(self.received.values()),
                "lost": sum(self.lost.values()), "errors": sum(self.errors.values())}


@dataclass(frozen=True, slots=True)
class StampPath:
    """One STAMP session's counters (``probes.stamp.session.SenderStatistics``) by path."""

    dst_site: str
    dst: str
    forward_lost: int | None
    backward_lost: int | None
    reordered: int
    duplicates: int
    unreachable: int = 0


@dataclass(frozen=True, slots=True)
class AgentState:
    """Everything ``/metrics`` shows besides the per-path counters, read at scrape time."""

    spool: SpoolStatus
    local_drops: Mapping[str, int] = field(default_factory=dict)
    upload_errors: Mapping[str, int] = field(default_factory=dict)
    uploaded: int = 0
    route_changes: int = 0
    clock: ClockStatus | None = None
    schedule_lag: Histogram | None = None
    stamp: Sequence[StampPath] = ()
    icmp_foreign: Mapping[int, int] = field(default_factory=dict)


def heartbeat_counters(m: ProbeMetrics, local_drops: Mapping[str, int]) -> dict[str, int]:
    """The totals and every local-drop cause (0 if none) under their heartbeat names
    (:data:`ixmeter.core.heartbeat.COUNTERS`). A cause outside that fixed set is a bug: logged once,
    left out so the heartbeat itself still goes through (it stays on ``/metrics``)."""
    counters = m.counters()
    counters.update({f"local_drops.{c}": local_drops.get(c, 0) for c in LOCAL_DROP_CAUSES})
    for cause in sorted(set(local_drops) - set(LOCAL_DROP_CAUSES) - _UNNAMED):
        _UNNAMED.add(cause)
        log.error("local drop cause %r is not in ixmeter.core.heartbeat.LOCAL_DROP_CAUSES: not "
                  "reported in heartbeats", cause)
    return counters


def _labels(**kv: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in kv.items())
    return "{" + inner + "}" if inner else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Text:
    """The exposition text being written: HELP/TYPE lines, then samples."""

    def __init__(self) -> None:
        self.out: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Sequence[tuple[str, float]] = (), lines: Sequence[str] = ()) -> None:
        self.out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        self.out += [f"{name}{labels} {value:g}" for labels, value in samples]
        self.out += lines


def _path(p: Path) -> str:
    return _labels(method=p[0], dst_site=p[1], dst=p[2])


def render(m: ProbeMetrics, state: AgentState) -> str:
    """The exposition text of the per-path counters and the agent's state."""
    t = _Text()
    _paths(t, m)
    _agent(t, state)
    _spool(t, state.spool)
    _clock(t, state.clock)
    _stamp(t, state.stamp)
    return "\n".join(t.out) + "\n"


def _paths(t: _Text, m: ProbeMetrics) -> None:
    for name, counter, text in (("sent", m.sent, "probes that left the host, per path"),
                                ("received", m.received, "probes answered within Tmax, per path"),
                                ("lost", m.lost, "probes not answered within Tmax, per path "
                                                 "(RFC 7680 §2.4)")):
        t.family(f"ixmeter_probe_{name}_total", "counter", text,
                 [(_path(k), v) for k, v in sorted(counter.items())])
    t.family("ixmeter_probe_rtt_seconds", "histogram",
             "round-trip delay of answered probes, per path (RFC 2681 §2.4; STAMP: network RTT)",
             lines=[line for k, h in sorted(m.rtt.items())
                    for line in h.lines("ixmeter_probe_rtt_seconds",
                                        {"method": k[0], "dst_site": k[1], "dst": k[2]})])
    t.family("ixmeter_probe_errors_total", "counter", "error results by method and kind",
             [(_labels(method=a, kind=b), v) for (a, b), v in sorted(m.errors.items())])
    t.family("ixmeter_probe_last_rtt_seconds", "gauge", "last round-trip delay per target",
             [(_labels(method=a, dst=b), v / 1e9) for (a, b), v in sorted(m.last_rtt_ns.items())])


def _agent(t: _Text, s: AgentState) -> None:
    t.family("ixmeter_probe_local_drops_total", "counter",
             "local drops by cause, apart from network loss",
             [(_labels(cause=k), v) for k, v in sorted(s.local_drops.items())])
    t.family("ixmeter_probe_uploaded_total", "counter", "results acknowledged by the collector",
             [("", s.uploaded)])
    t.family("ixmeter_probe_upload_errors_total", "counter", "failed uploads by reason",
             [(_labels(reason=k), v) for k, v in sorted(s.upload_errors.items())])
    t.family("ixmeter_probe_route_changes_total", "counter", "traceroute route changes",
             [("", s.route_changes)])
    t.family("ixmeter_probe_icmp_foreign_errors_total", "counter",
             "ICMP errors about other protocols' packets (e.g. port unreachable for STAMP), "
             "by IP protocol number", [(_labels(protocol=str(k)), v)
                                       for k, v in sorted(s.icmp_foreign.items())])
    if s.schedule_lag is not None:
        t.family("ixmeter_probe_schedule_lag_seconds", "histogram",
                 "how far behind its planned time each probe was started (RFC 2330 §11.1.3)",
                 lines=s.schedule_lag.lines("ixmeter_probe_schedule_lag_seconds", {}))


def _spool(t: _Text, spool: SpoolStatus) -> None:
    t.family("ixmeter_probe_spool_depth", "gauge", "results not yet acknowledged by the collector",
             [("", spool.depth)])
    t.family("ixmeter_probe_spool_bytes", "gauge", "bytes the spool file holds",
             [("", spool.bytes)])
    t.family("ixmeter_probe_spool_dropped_total", "counter", SPOOL_DROPPED_HELP,
             [(_labels(reason=r), spool.dropped.get(r, 0)) for r in SPOOL_DROP_REASONS])
    for i, (what, text) in enumerate((("batches", SET_ASIDE_BATCHES_HELP),
                                      ("results", SET_ASIDE_RESULTS_HELP))):
        t.family(f"ixmeter_probe_set_aside_{what}", "gauge", text,
                 [(_labels(reason=r), spool.set_aside.get(r, (0, 0))[i])
                  for r in SET_ASIDE_REASONS])


def _clock(t: _Text, clock: ClockStatus | None) -> None:
    if clock is None:
        return
    t.family("ixmeter_probe_clock_synchronised", "gauge",
             "1 if the host clock is synchronised, by where that was read (RFC 4656 §4.1.2 S)",
             [(_labels(source=clock.source, discipline=clock.discipline), int(clock.synced))])
    t.family("ixmeter_probe_clock_max_error_seconds", "gauge",
             "bound on the host clock's offset from UTC (RFC 7679 §3.7.3)",
             [("", clock.max_error_ns / 1e9)])


def _stamp(t: _Text, paths: Sequence[StampPath]) -> None:
    for name, attr, text in (
            ("forward_lost", "forward_lost", "STAMP packets lost on the way to the reflector "
             "(RFC 8762 §4: from a stateful reflector's counter)"),
            ("backward_lost", "backward_lost", "STAMP replies lost on the way back"),
            ("reordered", "reordered", "STAMP replies out of order (RFC 4737 §3.3)"),
            ("duplicates", "duplicates", "extra copies of STAMP replies (RFC 7679 §3.4)"),
            ("unreachable", "unreachable", "ICMP errors (e.g. port unreachable) on the session")):
        samples = [(_labels(dst_site=p.dst_site, dst=p.dst), float(getattr(p, attr)))
                   for p in paths if getattr(p, attr) is not None]
        t.family(f"ixmeter_probe_stamp_{name}_total", "counter", text, samples)


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
