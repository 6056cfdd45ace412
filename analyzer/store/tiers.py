"""Hour and day rollup tiers: pure folding of minute rollups into coarser UTC units.

A tier row is the merge of the minute rollups of one path x method x Type-P in one UTC hour or
day (:func:`analyzer.rollup.merge`): exact for counts, sums, extremes, sketches (DDSketch
§2.3) and threshold counts; ``loss_period_max`` (RFC 3357 §4.1) stays the longest period within
one minute, not one spanning minutes. Its ``minute`` is the unit's first minute. The store folds
each batch's rollups into its tiers in the ingest transaction, in the same order it merges the
minutes, so a tier row always equals :func:`fold` of its stored minutes.
"""

from __future__ import annotations

from collections.abc import Iterable

from analyzer.rollup import MinuteRollup
from analyzer.rollup import merge as merge_rollups

TIER_MINUTES = {"minute": 1, "hour": 60, "day": 1440}


def merge_pair(old: MinuteRollup, new: MinuteRollup) -> MinuteRollup:
    """Merge two rollups of one key. A threshold count is kept only if both sides have it, so a
    threshold added to the configuration mid-unit is never reported from a partial count."""
    merged = merge_rollups([old, new])
    merged.minute = min(old.minute, new.minute)
    for name in ("rtt", "fwd", "bwd"):
        a, b, m = getattr(old, name), getattr(new, name), getattr(merged, name)
        if a.n and b.n:
            m.below = {t: c for t, c in m.below.items() if t in a.below and t in b.below}
    return merged


def unit_start(minute: int, tier: str) -> int:
    """First minute of the UTC unit of ``tier`` holding ``minute``."""
    size = TIER_MINUTES[tier]
    return minute - minute % size


def fold(rollups: Iterable[MinuteRollup], tier: str) -> list[MinuteRollup]:
    """Rollups merged per key and unit of ``tier`` (in the order given), sorted by key; each
    result's ``minute`` is its unit's first minute."""
    out: dict[tuple[str, str, str, int], MinuteRollup] = {}
    for r in rollups:
        key = (r.path_id, r.method, r.type_p, unit_start(r.minute, tier))
        prev = out.get(key)
        out[key] = merge_pair(prev, r) if prev is not None else merge_rollups([r])
        out[key].minute = key[3]
    return [out[k] for k in sorted(out)]
