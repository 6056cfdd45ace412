"""Hour and day rollup tiers: pure folding of minute rollups into coarser UTC units.

A tier row is the merge of the minute rollups of one path x method x Type-P in one UTC hour or
day (:func:`analyzer.rollup.merge`): exact for counts, sums, extremes, sketches (DDSketch
§2.3) and threshold counts; ``loss_period_max`` (RFC 3357 §4.1) stays the longest period within
one minute, not one spanning minutes. Its ``minute`` is the unit's first minute. The store folds
each batch's rollups into its tiers in the ingest transaction, in the same order it merges the
minutes, so a tier row always equals :func:`fold` of its stored minutes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from analyzer.rollup import MinuteRollup, _merge_into
from analyzer.rollup import merge as merge_rollups
from analyzer.sketch import DEFAULT_ALPHA, DDSketch
from analyzer.store.rows import ROLLUP_COLUMNS, LazySketch, build_rollup, sketch_from_bytes
from analyzer.store.sketchcols import decode_many, encode_many

_SERIES = ("rtt", "fwd", "bwd")

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


def merge_parts(parts: Sequence[MinuteRollup]) -> MinuteRollup:
    """``merge_pair`` of the parts left to right (the same counts, floats and threshold
    counts), into one accumulator: linear in the parts, where a chain of ``merge_pair`` copies
    the growing sketch at every step. ``parts`` are left unchanged."""
    out = merge_rollups(parts[:1])
    for new in parts[1:]:
        shared = {name: set(getattr(out, name).below) & set(getattr(new, name).below)
                  for name in ("rtt", "fwd", "bwd")
                  if getattr(out, name).n and getattr(new, name).n}
        _merge_into(out, new)
        out.minute = min(out.minute, new.minute)
        for name, keep in shared.items():
            stats = getattr(out, name)
            stats.below = {t: c for t, c in stats.below.items() if t in keep}
    return out


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


def fold(rollups: Iterable[MinuteRollup], tier: str) -> list[MinuteRollup]:
    """Rollups merged per key and unit of ``tier`` (in the order given), sorted by key; each
    result's ``minute`` is its unit's first minute."""
    groups: dict[tuple[str, str, str, int], list[MinuteRollup]] = {}
    for r in rollups:
        groups.setdefault((r.path_id, r.method, r.type_p, unit_start(r.minute, tier)),
                          []).append(r)
    out = []
    for key in sorted(groups):
        merged = merge_parts(groups[key])
        merged.minute = key[3]
        out.append(merged)
    return out


def merge_row_groups(groups: Sequence[Sequence[Sequence[Any]]]) -> list[MinuteRollup]:
    """Each group (stored rows of one key, in part order) merged as :func:`merge_parts` would,
    with the sketches merged in encoded form for all groups at once (:func:`merge_sketch_blobs`)
    instead of decoding every part's sketch into a dict: what compaction of many small parts
    costs."""
    merged_blobs = {name: merge_sketch_blobs(
        [[bytes(row[ROLLUP_COLUMNS.index(f"{name}_sketch")]) for row in g] for g in groups])
        for name in _SERIES}
    out = []
    for i, g in enumerate(groups):
        parts = [build_rollup(row[:len(ROLLUP_COLUMNS)]) for row in g]
        for p in parts:  # counts and moments merged below; the sketches are merged already
            for name in _SERIES:
                getattr(p, name).sketch = DDSketch(DEFAULT_ALPHA)
        m = merge_parts(parts)
        for name in _SERIES:
            getattr(m, name).sketch = LazySketch(merged_blobs[name][i])
        out.append(m)
    return out


def merge_sketch_blobs(groups: Sequence[Sequence[bytes]]) -> list[bytes]:
    """``DDSketch.to_bytes()`` of the merge (DDSketch §2.3: bucket counts add) of each group of
    encoded sketches: all blobs decoded in one vectorised pass, buckets summed per group with
    one ``np.unique``, re-encoded with :func:`encode_many`. Irregular blobs go through the
    reference decoder and ``DDSketch.merge``."""
    flat = [b for grp in groups for b in grp]
    decoded = decode_many(flat)
    if decoded is None:
        out = []
        for grp in groups:
            acc = DDSketch(DEFAULT_ALPHA)
            for blob in grp:
                acc.merge(sketch_from_bytes(blob))
            out.append(acc.to_bytes())
        return out
    n_groups = len(groups)
    blob_group = np.repeat(np.arange(n_groups), [len(grp) for grp in groups])
    sizes = [len(k) for _z, k, _c in decoded]
    zero = np.bincount(blob_group, weights=[z for z, _k, _c in decoded],
                       minlength=n_groups).astype(np.int64)
    if not sum(sizes):
        return encode_many(zero, [], [], np.zeros(n_groups, np.int64))
    keys = np.concatenate([k for _z, k, _c in decoded]).astype(np.int64)
    counts = np.concatenate([c for _z, _k, c in decoded]).astype(np.int64)
    combined = (np.repeat(blob_group, sizes).astype(np.int64) << 32) | (keys + 2**31)
    uniq, inverse = np.unique(combined, return_inverse=True)
    summed = np.zeros(len(uniq), np.int64)
    np.add.at(summed, inverse, counts)
    owner = uniq >> 32
    return encode_many(zero, (uniq & 0xFFFFFFFF) - 2**31, summed,
                       np.bincount(owner, minlength=n_groups))
