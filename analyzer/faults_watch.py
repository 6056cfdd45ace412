"""``ixmeter faults --watch``: judge the fault rules every day once each rule's hours are over,
and serve the open faults as Prometheus metrics, so the authority hears of a fault without
looking (docs/faults.md has an alerting rule).

:func:`last_complete_day` and :class:`Watch` are pure over an injected clock; the loop around
them (:func:`run_watch`) only sleeps, opens the store read-only for each evaluation and serves
``/metrics`` with ``prometheus_client``. Each evaluation covers the ``lookback`` days up to each
rule's last complete day, so data that arrived late is judged the next day.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from analyzer.fault_register import Register
from analyzer.localtime import day_label, day_start_ns, local_minutes
from analyzer.store.base import ReadStore
from inventory.schema import FaultRule, Inventory

NS = 1_000_000_000
PREFIX = "ixmeter_fault"


def last_complete_day(rule: FaultRule, now_ns: int, grace_minutes: int) -> int:
    """The last local day (day number in the rule's time zone) whose chosen hours ended at
    least ``grace_minutes`` before ``now_ns``."""
    import numpy as np

    cal = rule.calendar
    minute = np.array([now_ns // (60 * NS)], dtype=np.int64)
    local = int(local_minutes(minute, cal.timezone)[0])
    day, minute_of_day = divmod(local, 1440)
    end = (max(cal.hours) + 1) * 60 if cal.hours else 1440
    return day if minute_of_day >= end + grace_minutes else day - 1


@dataclass
class Watch:
    """Which rules are due, and the register of the last evaluation."""

    inventory: Inventory
    evaluate: Callable[[FaultRule, date, date], Register]
    lookback: int = 14
    grace_minutes: int = 30
    done: dict[str, int] = field(default_factory=dict)  # rule -> last day evaluated
    registers: dict[str, Register] = field(default_factory=dict)
    evaluated_at_ns: int | None = None
    errors: int = 0

    def due(self, now_ns: int) -> list[FaultRule]:
        """Rules with a newly completed day since their last evaluation."""
        return [r for r in self.inventory.fault_rules
                if last_complete_day(r, now_ns, self.grace_minutes) > self.done.get(r.id, -1)]

    def tick(self, now_ns: int) -> list[str]:
        """Evaluate every due rule over its lookback days; the ids evaluated."""
        done = []
        for rule in self.due(now_ns):
            last = last_complete_day(rule, now_ns, self.grace_minutes)
            first_day, last_day = _date(last - self.lookback + 1), _date(last)
            self.registers[rule.id] = self.evaluate(rule, first_day, last_day)
            self.done[rule.id] = last
            done.append(rule.id)
        if done:
            self.evaluated_at_ns = now_ns
        return done


def _date(day: int) -> date:
    return date.fromisoformat(day_label(day))


def _labels(f: Any) -> dict[str, str]:
    s = f.series
    return {"rule": s.rule, "segment": s.segment, "role": s.role,
            "interconnect": s.interconnect, "path": s.path, "direction": s.direction,
            "type_p": s.type_p}


class FaultCollector:
    """A Prometheus collector over a :class:`Watch`: one gauge series per open fault, counts
    per rule, the time of the last evaluation (prometheus_client custom collector)."""

    def __init__(self, watch: Watch) -> None:
        self.watch = watch

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        w = self.watch
        keys = ["rule", "segment", "role", "interconnect", "path", "direction", "type_p"]
        opened = GaugeMetricFamily(f"{PREFIX}_open", "1 for each open fault of a fault rule",
                                   labels=keys)
        since = GaugeMetricFamily(f"{PREFIX}_open_since_timestamp_seconds",
                                  "start (UTC) of the local day an open fault began",
                                  labels=keys)
        per_rule = GaugeMetricFamily(f"{PREFIX}_rule_open_faults",
                                     "open faults per fault rule", labels=["rule", "article"])
        states = GaugeMetricFamily(f"{PREFIX}_rule_judgements",
                                   "series x days of the last evaluation, by state",
                                   labels=["rule", "state"])
        for rule in w.inventory.fault_rules:
            reg = w.registers.get(rule.id)
            if reg is None:
                continue
            open_faults = reg.open_faults()
            per_rule.add_metric([rule.id, rule.article.en], len(open_faults))
            counts: dict[str, int] = {}
            for s in reg.series:
                for d in s.days:
                    counts[d.state] = counts.get(d.state, 0) + 1
            for state, n in sorted(counts.items()):
                states.add_metric([rule.id, state], n)
            for f in open_faults:
                values = list(_labels(f).values())
                opened.add_metric(values, 1)
                began = date.fromisoformat(f.began)
                since.add_metric(values, day_start_ns(
                    (began - date(1970, 1, 1)).days, rule.calendar.timezone) / NS)
        yield from (opened, since, per_rule, states)
        last = GaugeMetricFamily(f"{PREFIX}s_last_evaluation_timestamp_seconds",
                                 "when the fault rules were last evaluated (UTC)")
        if w.evaluated_at_ns is not None:
            last.add_metric([], w.evaluated_at_ns / NS)
        yield last
        errors = CounterMetricFamily(f"{PREFIX}s_evaluation_errors",
                                     "evaluations that failed (the store was unreadable)")
        errors.add_metric([], w.errors)
        yield errors


def registry_for(watch: Watch) -> Any:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(FaultCollector(watch))
    return registry


def _bind(text: str) -> tuple[str, int]:
    from ixmeter.core.errors import IxmeterError

    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise IxmeterError(f"--metrics {text!r} is not HOST:PORT", hint="e.g. 127.0.0.1:9464")
    return host.strip("[]"), int(port)


def run_watch(args: argparse.Namespace, inv: Inventory, open_store: Callable[[], ReadStore],
              clock: Callable[[], int] = time.time_ns,
              sleep: Callable[[float], None] = time.sleep,
              started: Callable[[int], None] | None = None) -> int:
    """The loop: serve /metrics, then every ``--interval`` evaluate the rules that are due,
    each evaluation on a store ``open_store`` opens read-only (and this closes).
    Returns only on Ctrl-C (KeyboardInterrupt) or when ``sleep`` raises."""
    from prometheus_client import start_http_server

    from analyzer.faults import evaluate_faults

    rules = [r for r in inv.fault_rules if not args.rule or r.id in args.rule]
    inv = inv.model_copy(update={"fault_rules": rules})

    def evaluate(rule: FaultRule, first: date, last: date) -> Register:
        store = open_store()
        try:
            return evaluate_faults(store, inv, first, last, args.tier, [rule.id])
        finally:
            store.close()

    watch = Watch(inv, evaluate, args.lookback_days, args.grace_minutes)
    host, port = _bind(args.metrics)
    server, _thread = start_http_server(port, host, registry=registry_for(watch))
    try:
        if started is not None:
            started(server.server_port)
        print(f"ixmeter faults: serving http://{host}:{server.server_port}/metrics; "
              f"evaluating {', '.join(r.id for r in rules)} daily", flush=True)
        while True:
            _tick(watch, clock())
            sleep(args.interval)
    finally:
        server.shutdown()
        server.server_close()


def _tick(watch: Watch, now_ns: int) -> None:
    """One check: evaluate what is due. A failed evaluation (store unreachable, database
    error) is counted on /metrics and printed, and retried at the next check: the watch keeps
    serving what it last knew rather than dying at night."""
    try:
        for rule_id in watch.tick(now_ns):
            reg = watch.registers[rule_id]
            print(f"ixmeter faults: {rule_id}: days {reg.first} .. {reg.last}, "
                  f"{len(reg.open_faults())} open faults", flush=True)
    except Exception as exc:  # noqa: BLE001 - any store error: count it, say it, retry
        watch.errors += 1
        print(f"ixmeter faults: evaluation failed: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
