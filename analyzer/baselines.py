"""Baselines: a measured window of the store, an imported data set, or declared values.

- measured: a window of the same store (``--baseline FROM/TO`` or the inventory's window), or
  of the separate store given as ``--baseline-db`` (e.g. a copy of the network measured at the
  same time, as the demo does);
- imported: files loaded with ``ixmeter import`` into the store (or into a separate database
  given as ``--baseline-db``); then it is a measured window of that store (the inventory's
  window, ``--baseline``, or all of it);
- declared: values with the document they come from (inventory ``Baseline.values`` and
  ``source``), each for its own path scope; compared without sampling error on the baseline
  side. A group takes the value whose scope holds all its paths (:func:`declared_for`).

Windows are half-open [from, to) in ISO 8601 (RFC 3339); a time without offset is UTC.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from inventory.schema import Baseline, Inventory, PathScope, PolicyTarget
from inventory.topology import PathEnds
from ixmeter.core.errors import IxmeterError

ALL_TIME = (0, 2**62)


class WindowError(IxmeterError):
    """A window argument that is not FROM/TO in ISO 8601."""


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A half-open UTC window [start_ns, end_ns)."""

    start_ns: int
    end_ns: int

    def iso(self) -> str:
        """``FROM/TO`` in ISO 8601 UTC with a ``Z`` suffix."""
        return f"{iso_ns(self.start_ns)}/{iso_ns(self.end_ns)}"


def iso_ns(ns: int) -> str:
    """ISO 8601 UTC of a time in ns (seconds precision unless sub-second)."""
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    frac = ns % 1_000_000_000
    return f"{text}.{frac:09d}Z".replace(".000000000Z", "Z") if frac else f"{text}Z"


def parse_time(text: str) -> int:
    """ISO 8601 -> ns since the epoch; a time without offset is UTC."""
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise WindowError(f"{text!r} is not an ISO 8601 time",
                          hint="write e.g. 2026-01-05T00:00:00+08:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return _to_ns(dt)


def _to_ns(dt: datetime) -> int:
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def parse_window(text: str) -> TimeWindow:
    """``FROM/TO`` (ISO 8601 interval of two times) -> :class:`TimeWindow`."""
    parts = text.split("/")
    if len(parts) != 2:
        raise WindowError(f"{text!r} is not FROM/TO",
                          hint="write e.g. 2026-01-05T00:00:00Z/2026-02-02T00:00:00Z")
    start, end = parse_time(parts[0]), parse_time(parts[1])
    if end <= start:
        raise WindowError(f"window {text!r} ends before it starts")
    return TimeWindow(start, end)


@dataclass(frozen=True, slots=True)
class Declared:
    """One declared baseline value and the path scope it was declared for."""

    statistic: str
    value: float
    unit: str
    scope: PathScope

    @property
    def scope_label(self) -> str:
        """The scope as declared (its non-default fields, JSON), or ``all paths``."""
        fields = self.scope.model_dump(mode="json", exclude_defaults=True)
        return json.dumps(fields, sort_keys=True, ensure_ascii=False) if fields else "all paths"


@dataclass(frozen=True, slots=True)
class ResolvedBaseline:
    """What a relative target is compared with."""

    kind: str  # measured | imported | declared
    source: str
    window: TimeWindow | None = None
    separate_store: bool = False
    declared: tuple[Declared, ...] = ()


def declared_for(res: ResolvedBaseline, statistic: str, paths: Sequence[PathEnds],
                 in_scope: Callable[[PathScope, PathEnds], bool]
                 ) -> tuple[Declared | None, str]:
    """The declared value of ``statistic`` for a group of ``paths``: the one whose scope holds
    every path of the group; a value for a narrower scope before one for all paths. None and
    the reason when no value, or more than one narrower value, applies."""
    values = [d for d in res.declared if d.statistic == statistic]
    if not values:
        return None, f"the declared baseline gives no value for {statistic}"
    fits = [d for d in values if all(in_scope(d.scope, p) for p in paths)]
    narrow = [d for d in fits if d.scope != PathScope()]
    if len(narrow) > 1:
        return None, (f"declared values of {statistic} for several scopes apply to this group: "
                      + "; ".join(d.scope_label for d in narrow))
    if narrow or fits:
        return (narrow or fits)[0], ""
    return None, (f"no declared value of {statistic} covers all paths of this group "
                  f"(declared for: {'; '.join(d.scope_label for d in values)})")


def find_baseline(inv: Inventory, baseline_id: str | None) -> Baseline | None:
    return next((b for b in inv.baselines if b.id == baseline_id), None)


def resolve(target: PolicyTarget, inv: Inventory, override: TimeWindow | None,
            has_baseline_store: bool = False) -> ResolvedBaseline | str:
    """The baseline of a relative target, or the reason there is none."""
    b = find_baseline(inv, target.baseline)
    if b is None:
        if override is not None:
            return ResolvedBaseline("measured", "--baseline", override,
                                    separate_store=has_baseline_store)
        return "no baseline: give --baseline FROM/TO or name one in the inventory"
    if b.kind == "declared":
        assert b.source is not None
        values = tuple(Declared(v.statistic, v.value, str(v.unit), v.scope) for v in b.values)
        return ResolvedBaseline("declared", _doc(b), declared=values)
    window = override or (_window(b) if b.window else None)
    if b.kind == "imported":
        return ResolvedBaseline("imported", f"{b.id}: {', '.join(b.files)}",
                                window or TimeWindow(*ALL_TIME), has_baseline_store)
    assert window is not None
    return ResolvedBaseline("measured", b.id if override is None else "--baseline", window,
                            has_baseline_store)


def _window(b: Baseline) -> TimeWindow:
    assert b.window is not None
    return TimeWindow(_to_ns(_aware(b.window.start)), _to_ns(_aware(b.window.end)))


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _doc(b: Baseline) -> str:
    src = b.source
    if src is None:
        return b.id
    ref = f", {src.reference}" if src.reference else ""
    return f"{b.id}: {src.title.en} ({src.issuer}, {src.year}{ref})"


def declared_ns(value: float, unit: str) -> float:
    """A declared value in the analyzer's units: ns for ms, the ratio as given."""
    return value * 1e6 if unit == "ms" else value
