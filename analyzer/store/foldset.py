"""Which batches a fold folds, and how a fold link names them (pure, no I/O).

Several writers (collectors on one PostgreSQL) append batches to one chain, each keeping the
rollups of the batches it stored in memory until it folds them. A fold therefore folds a *set*
of batches, not "everything through index N": each writer folds the batches it holds, and a
batch no writer holds (its collector crashed or restarted) is folded from its stored raw results
by any writer once it has waited :data:`GRACE_S`, or at once by ``ixmeter collector compact``.

A fold link's detail names the batches it folded as ranges of chain indices
(:func:`ranges_of`, ``"batches": [[first, last], ...]``) and the *watermark* ``"through"``: every
batch at or below it is folded. The batches not folded are those above the last fold link's
watermark that no later fold link names (:func:`unfolded_of`).

A key's stored row must stay the left-to-right merge of its batches in chain order (what one
collector folding everything in order produces, bit for bit: float sums do not reassociate).
So a batch is folded only if no *earlier* unfolded batch left out of the fold may touch one of
its keys (:func:`choose`): then, for every key, the batches folded are a chain-order prefix of
those not folded yet. "May touch" is judged without decoding anything, from the batch link's
send-time span and its blobs' streams: two batches may share a key only if they share a path
and a UTC day (the largest rollup unit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

NS_PER_DAY = 86_400 * 10**9
GRACE_S = 60.0
"""Seconds a batch waits for the writer that stored it before any writer folds it from raw.
A live collector folds what it holds every 64 batches, after 0.5 s idle and when it stops, so a
batch it holds is folded within seconds; 60 s is an order of magnitude more, so another writer
practically never decodes a batch a live writer still holds, while a crashed collector's
batches reach the rollup tables within a minute (readers see them before that anyway, folded in
memory). Correctness never depends on it: a batch is folded once whoever folds it."""


@dataclass(frozen=True, slots=True)
class Unfolded:
    """A stored batch not folded yet: chain index, delay thresholds, when it was received,
    and its send-time span."""

    bid: int
    thresholds: tuple[int, ...]
    at_ns: int
    first_ns: int
    last_ns: int


Span = tuple[frozenset[str], int, int]
"""What keys a batch may touch: its paths and its first and last UTC day."""


def choose(unfolded: Sequence[Unfolded], eligible: Callable[[Unfolded], bool],
           span: Callable[[Unfolded], Span], limit: int) -> list[Unfolded]:
    """The batches a fold folds, in chain order: each eligible batch (held by this writer,
    waited its grace, or everything) unless an earlier batch left out may touch one of its
    keys; at most ``limit``. ``span`` is called only once a batch has been left out."""
    chosen: list[Unfolded] = []
    blocked: dict[str, list[tuple[int, int]]] = {}
    for u in unfolded:
        if len(chosen) >= limit:
            break
        if eligible(u) and not (blocked and _touches(blocked, span(u))):
            chosen.append(u)
            continue
        paths, low, high = span(u)
        for path in paths:
            blocked.setdefault(path, []).append((low, high))
    return chosen


def _touches(blocked: dict[str, list[tuple[int, int]]], span: Span) -> bool:
    paths, low, high = span
    return any(lo <= high and low <= hi for p in paths for lo, hi in blocked.get(p, ()))


def days_of(first_ns: int, last_ns: int) -> tuple[int, int]:
    """The first and last UTC day (days since the epoch) of a send-time span."""
    return first_ns // NS_PER_DAY, last_ns // NS_PER_DAY


def watermark(unfolded: Sequence[Unfolded], chosen: Sequence[Unfolded], last_index: int
              ) -> int:
    """The fold's ``through``: below the first batch it leaves unfolded, else the chain's
    last index before its link."""
    picked = {u.bid for u in chosen}
    return next((u.bid - 1 for u in unfolded if u.bid not in picked), last_index)


def ranges_of(ids: Iterable[int]) -> list[list[int]]:
    """Sorted chain indices as inclusive ranges ``[[first, last], ...]``."""
    out: list[list[int]] = []
    for i in sorted(ids):
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def ids_of_ranges(ranges: object, below: int | None = None) -> list[int]:
    """The chain indices of :func:`ranges_of`'s ranges; ValueError if malformed, or if a
    range reaches ``below`` (a fold link's own index: it folds earlier links only)."""
    if not isinstance(ranges, list):
        raise ValueError("a fold link's batches must be a list of [first, last] ranges")
    out: list[int] = []
    for r in ranges:
        if (not isinstance(r, list) or len(r) != 2 or not all(type(x) is int for x in r)
                or not 0 < r[0] <= r[1] or (below is not None and r[1] >= below)):
            raise ValueError(f"a fold link names a malformed range of batches: {r!r}")
        out += range(r[0], r[1] + 1)
    return out


def unfolded_of(batches: Sequence[Unfolded], fold_ranges: Iterable[object]) -> list[Unfolded]:
    """The batches above the watermark that none of the later fold links' ranges names."""
    folded = {i for ranges in fold_ranges for i in ids_of_ranges(ranges)}
    return [b for b in batches if b.bid not in folded]
