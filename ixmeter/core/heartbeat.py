"""The probe's heartbeat body and its fixed set of counter names, shared by probe and collector.

``POST /v1/probes/{id}/heartbeat`` carries canonical JSON (sorted keys, no spaces, UTF-8)
``{"counters": {name: int}, "spool_depth": int, "version": str}``, every key optional. Counter
names come from :data:`COUNTERS` only, values are integers in [0, 2^63 - 1] (a boolean is not an
integer), the body is at most :data:`MAX_BODY` bytes: :func:`decode` refuses anything else with
:class:`HeartbeatError` naming the field (the collector answers 400 or 422 with it). A fixed set
bounds what one probe can add to the collector's ``/metrics`` and to its store.

Each counter says how the collector exports it (:mod:`analyzer.collector.app`): family
``ixmeter_collector_probe_<family>`` with the probe id as label ``probe``, plus the counter's own
label if it has one. Counters of events since the agent started (Prometheus counters, they
reset when the agent restarts: the ``rate()``/``increase()`` functions handle that) and gauges of
what the probe's spool holds now.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ixmeter.core.errors import IxmeterError

MAX_BODY = 8 * 1024
MAX_VERSION = 64
MAX_VALUE = 2**63 - 1  # stored as SQL BIGINT

# the probe's local drops and oddities by cause, apart from network loss (STYLE.md §6):
# the scheduler's queue_full; the ICMP pinger's send/recv errors and the replies it discards
LOCAL_DROP_CAUSES = ("queue_full", "send_error", "recv_error", "late", "duplicate", "stray",
                     "malformed_stray")
# why a batch (or one spooled result) was set aside in the spool's ``rejected`` table:
# refused: the collector answered 400/422 (it can never accept this body);
# too_large: 413 for a batch of a single result (it cannot be split further);
# unreadable: a spooled result that no longer validates or is another probe's (never sent)
SET_ASIDE_REASONS = ("refused", "too_large", "unreadable")
# why the spool let results go before they were sent: max_age / max_bytes (its limits, the
# oldest first) or disk_full (results the agent could not write and could no longer hold)
SPOOL_DROP_REASONS = ("max_age", "max_bytes", "disk_full")


@dataclass(frozen=True, slots=True)
class CounterName:
    """One name a heartbeat may report, and how the collector exports it."""

    name: str  # the key in the heartbeat's ``counters``
    family: str  # the metric family, after ``ixmeter_collector_probe_`` (and before _total)
    kind: Literal["counter", "gauge"]
    help: str
    label: tuple[str, str] | None = None  # (label, value) within the family


def _family(prefix: str, kind: Literal["counter", "gauge"], help_text: str, label: str,
            values: tuple[str, ...]) -> tuple[CounterName, ...]:
    return tuple(CounterName(f"{prefix}.{v}", prefix, kind, help_text, (label, v))
                 for v in values)


SET_ASIDE_BATCHES_HELP = "batches set aside in the probe's spool (kept, no longer sent), by reason"
SET_ASIDE_RESULTS_HELP = "results in the batches set aside in the probe's spool, by reason"
SPOOL_DROPPED_HELP = ("results the probe's spool let go before they were sent (its limits, "
                      "oldest first, or a full disk), by reason")

COUNTERS: tuple[CounterName, ...] = (
    CounterName("sent", "sent", "counter", "probes that left the probe host"),
    CounterName("received", "received", "counter", "probes answered within Tmax"),
    CounterName("lost", "lost", "counter", "probes not answered within Tmax (RFC 7680 §2.4)"),
    CounterName("errors", "errors", "counter",
                "results with an error (local drops and send errors included)"),
    *_family("local_drops", "counter", "local drops by cause, apart from network loss",
             "cause", LOCAL_DROP_CAUSES),
    *_family("set_aside_batches", "gauge", SET_ASIDE_BATCHES_HELP, "reason", SET_ASIDE_REASONS),
    *_family("set_aside_results", "gauge", SET_ASIDE_RESULTS_HELP, "reason", SET_ASIDE_REASONS),
    *_family("spool_dropped", "counter", SPOOL_DROPPED_HELP, "reason", SPOOL_DROP_REASONS),
    CounterName("spool_bytes", "spool_bytes", "gauge", "bytes the probe's spool file holds"),
    CounterName("route_changes", "route_changes", "counter",
                "route changes seen by traceroute (an event each, with before and after hops)"),
)
BY_NAME: Mapping[str, CounterName] = {c.name: c for c in COUNTERS}


class HeartbeatError(IxmeterError):
    """A heartbeat body the collector refuses; ``field`` names what is wrong (``body`` if it is
    not a JSON object at all)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"field {where!r}: {message}" if where != "body" else message)
        self.field = where


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a probe reports about itself; None (or a missing counter) means not reported."""

    version: str | None = None
    spool_depth: int | None = None
    counters: Mapping[str, int] = field(default_factory=dict)


def set_aside_counters(set_aside: Mapping[str, tuple[int, int]]) -> dict[str, int]:
    """The ``set_aside_{batches,results}.<reason>`` counters of a spool's
    ``{reason: (batches, results)}``, every reason present (0 when none)."""
    out: dict[str, int] = {}
    for reason in SET_ASIDE_REASONS:
        batches, results = set_aside.get(reason, (0, 0))
        out[f"set_aside_batches.{reason}"] = batches
        out[f"set_aside_results.{reason}"] = results
    return out


def spool_counters(used_bytes: int, dropped: Mapping[str, int]) -> dict[str, int]:
    """``spool_bytes`` and the ``spool_dropped.<reason>`` counters, every reason present."""
    out = {f"spool_dropped.{r}": dropped.get(r, 0) for r in SPOOL_DROP_REASONS}
    out["spool_bytes"] = used_bytes
    return out


def set_aside_totals(counters: Mapping[str, int] | None) -> tuple[int, int]:
    """(batches, results) set aside, summed over reasons, from reported counters."""
    counters = counters or {}
    return (sum(counters.get(f"set_aside_batches.{r}", 0) for r in SET_ASIDE_REASONS),
            sum(counters.get(f"set_aside_results.{r}", 0) for r in SET_ASIDE_REASONS))


def encode(hb: Heartbeat) -> bytes:
    """The canonical body; raises :class:`HeartbeatError` for what :func:`decode` would
    refuse (a name outside the fixed set is a bug in the probe, not something to send)."""
    obj: dict[str, Any] = {}
    if hb.version is not None:
        obj["version"] = hb.version
    if hb.spool_depth is not None:
        obj["spool_depth"] = hb.spool_depth
    if hb.counters:
        obj["counters"] = dict(hb.counters)
    body = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    decode(body)
    return body


def decode(body: bytes) -> Heartbeat:
    """A heartbeat body, checked field by field (module docstring); the only decoder."""
    if len(body) > MAX_BODY:
        raise HeartbeatError("body", f"body of {len(body)} bytes exceeds {MAX_BODY} bytes")
    obj = _json_object(body)
    unknown = sorted(set(obj) - {"version", "spool_depth", "counters"})
    if unknown:
        raise HeartbeatError(_short(unknown[0]), "unknown field (expected version, "
                             "spool_depth, counters)")
    depth = obj.get("spool_depth")
    return Heartbeat(_version(obj.get("version")),
                     None if depth is None else _count("spool_depth", depth),
                     _counters(obj.get("counters")))


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(body.decode("utf-8") if body else "{}",
                         object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError too
        raise HeartbeatError("body", f"body: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise HeartbeatError("body", "body: expected a JSON object")
    return obj


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("a key appears twice in one object")
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _version(value: Any) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, str) and 0 < len(value) <= MAX_VERSION and value.isprintable()):
        raise HeartbeatError("version", f"expected a printable string of 1 to {MAX_VERSION} "
                             f"characters, got {_short(value)}")
    return value


def _count(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VALUE:
        raise HeartbeatError(where, f"expected an integer in [0, 2^63 - 1], got {_short(value)}")
    return value


def _counters(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HeartbeatError("counters", f"expected an object, got {_short(value)}")
    out: dict[str, int] = {}
    for name, v in value.items():
        if name not in BY_NAME:
            raise HeartbeatError(f"counters.{_short(name)}", "unknown counter name (see "
                                 "ixmeter.core.heartbeat.COUNTERS)")
        out[name] = _count(f"counters.{name}", v)
    return out


def _short(value: Any) -> str:
    """A value for an error message: printable (a lone surrogate escaped), at most 60
    characters."""
    text = value if isinstance(value, str) and value.isprintable() else ascii(value)
    return text if len(text) <= 60 else text[:57] + "..."
