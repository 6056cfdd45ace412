"""Composite conditions of fault rules, judged on one day's figures (pure).

A condition (inventory :class:`~inventory.schema.Condition`) is ``all_of`` / ``any_of`` a list
of conditions, or one test of a statistic: ``above`` a threshold (value > T), ``at_least`` it
(value >= T), or ``above_reference_by`` a margin (value > reference x (1 + margin), so with a
reference of 0 any value above 0). A test whose value, threshold or reference is unknown is
unknown, and the tree is judged in Kleene's strong three-valued logic (Kleene, Introduction to
Metamathematics, 1952, §64): ``all_of`` is false if any part is false, unknown if any is
unknown, else true; ``any_of`` is true if any part is true, unknown if any is unknown, else
false. So a day with an Annex 4 value still to be filled in is NOT EVALUABLE unless another
branch already decides it.

Values are in the store's units: delays in ns, loss as a ratio; thresholds in ms are read as
ms x 10^6, in percent as value / 100.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from inventory.schema import Condition, Threshold

STAT_NAMES = {"rtt_mean": "mean", "rtt_median": "median", "rtt_p95": "p95",
              "rtt_p99": "p99", "rtt_min": "min", "pdv_p99": "pdv_p99",
              "loss_ratio": "loss_ratio"}  # rule statistic -> unit-table statistic


@dataclass(frozen=True, slots=True)
class Check:
    """One test of a condition on one day: what was compared with what, and the outcome
    (``holds`` None: unknown, ``why`` says which input was missing)."""

    statistic: str
    relation: str  # ">", ">=", "> reference x (1 + m)"
    threshold: str  # threshold id
    source: str  # the threshold's source text
    limit: float | None  # the value compared with (ns or ratio), None if unknown
    value: float | None
    reference: float | None
    holds: bool | None
    why: str = ""
    missing: str = ""  # when unknown: "threshold", "value" or "reference"


def threshold_value(th: Threshold) -> float | None:
    """A threshold in the store's units (ns or ratio), None while not filled in."""
    if th.value is None:
        return None
    return th.value * 1e6 if th.unit == "ms" else th.value / 100


def statistics(cond: Condition) -> set[str]:
    """Every statistic a condition tests."""
    return {c.statistic for c in tests(cond) if c.statistic is not None}


def tests(cond: Condition) -> Iterator[Condition]:
    """The statistic tests of a condition tree, depth first."""
    for part in (cond.all_of or []) + (cond.any_of or []):
        yield from tests(part)
    if cond.statistic is not None:
        yield cond


def uses_reference(cond: Condition) -> bool:
    return any(c.above_reference_by for c in tests(cond))


def judge(cond: Condition, values: Mapping[str, float], reference: Mapping[str, float] | None,
          thresholds: Mapping[str, Threshold], no_reference: str = "no reference figure"
          ) -> tuple[bool | None, list[Check]]:
    """The condition's outcome (None: unknown) and every test's :class:`Check`, in order.
    ``values`` and ``reference`` map statistics to figures (NaN: undefined)."""
    checks: list[Check] = []
    return _judge(cond, values, reference, thresholds, no_reference, checks), checks


def _judge(cond: Condition, values: Mapping[str, float], reference: Mapping[str, float] | None,
           thresholds: Mapping[str, Threshold], no_reference: str,
           checks: list[Check]) -> bool | None:
    if cond.all_of is not None or cond.any_of is not None:
        parts = [_judge(c, values, reference, thresholds, no_reference, checks)
                 for c in (cond.all_of or cond.any_of or [])]
        decisive = cond.any_of is not None  # True decides any_of, False decides all_of
        if decisive in parts:
            return decisive
        return None if None in parts else not decisive
    check = _test(cond, values, reference, thresholds, no_reference)
    checks.append(check)
    return check.holds


def _known(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else x


def _test(cond: Condition, values: Mapping[str, float], reference: Mapping[str, float] | None,
          thresholds: Mapping[str, Threshold], no_reference: str) -> Check:
    stat = cond.statistic or ""
    tid = cond.above or cond.at_least or cond.above_reference_by or ""
    th = thresholds[tid]
    value = _known(values.get(stat))
    ref = _known(reference.get(stat)) if reference is not None else None
    margin = threshold_value(th)
    if cond.above_reference_by:
        relation = f"> reference x (1 + {th.value:g} %)" if th.value is not None else \
            "> reference x (1 + margin)"
        limit = None if ref is None or margin is None else ref * (1 + margin)
    else:
        relation = ">" if cond.above else ">="
        limit = margin
    why, missing = "", ""
    if th.value is None:
        why, missing = f"{th.id} has no value ({th.source})", "threshold"
    elif value is None:
        why, missing = f"{stat} undefined: no packet arrived", "value"
    elif cond.above_reference_by and ref is None:
        why, missing = no_reference, "reference"
    holds: bool | None = None
    if not why and value is not None and limit is not None:
        holds = value >= limit if relation == ">=" else value > limit
    return Check(stat, relation, tid, th.source, limit, value, ref, holds, why, missing)
