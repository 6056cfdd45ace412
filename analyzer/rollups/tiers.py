"""Rollup tiers: UTC minute, hour and day units.

A tier row merges the minute rollups of one path x method x Type-P in one UTC hour or day
(:func:`analyzer.rollups.tables.fold_units`): exact for counts, sums, extremes, sketches
(DDSketch §2.3) and threshold counts; ``loss_period_max`` (RFC 3357 §4.1) stays the longest
period within one minute, not one spanning minutes. Its ``minute`` is the unit's first minute.
"""

from __future__ import annotations

from collections.abc import Sequence

TIER_MINUTES = {"minute": 1, "hour": 60, "day": 1440}
"""Minutes per unit of each rollup tier."""


def unit_start(minute: int, tier: str) -> int:
    """First minute of the UTC unit of ``tier`` holding ``minute``."""
    size = TIER_MINUTES[tier]
    return minute - minute % size


def unit_runs(units: Sequence[int], size: int) -> list[tuple[int, int]]:
    """Sorted unit minutes (units of ``size`` minutes) as runs of consecutive units: the first
    and last unit minute of each run."""
    runs: list[list[int]] = []
    for u in units:
        if runs and u == runs[-1][1] + size:
            runs[-1][1] = u
        else:
            runs.append([u, u])
    return [(a, b) for a, b in runs]
