"""The one synthetic rollup writer: two windows of day tiers (and busy-hour tiers) written
straight into a store (SQLite file or PostgreSQL URL) through ``Writer.load_rows``
(bench.store_tiers, bench.province and bench.dashboard_load, each with its own sizes).

Each (path, method) gets a baseline window (``days`` days from ``first_min``, by default a year
from ``Y0``) and a current window (the ``days`` days after it) of day rollups: 86,400 probes a
day, lognormal delays as DDSketch bucket counts, ``templates`` synthetic days per path and
window, each stored day drawn from them. Inter-carrier paths are 20-40 ms in the baseline and
8-30 % of that in the current window (the detour through another province removed);
intra-carrier ones keep their delay (0.4-1.2 ms in one city, 4-8 ms across cities). A STAMP path
also carries one-way delays (half the round trip each way, clocks synchronised, 50 us error
bound). Every load is a chain *load* link whose note (the caller's) says the rows are synthetic;
the writer refuses a note that does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from analyzer.rollups.model import DelayStats, MinuteRollup
from analyzer.rollups.rows import ROLLUP_COLUMNS, rollup_row
from analyzer.rollups.sketch import DDSketch
from analyzer.store import open_store
from analyzer.store.writes import Writer
from analyzer.synthetic.province import MeshPath
from analyzer.synthetic.results import ICMP_V4, STAMP_V4

DAY_MIN = 1440
YEAR = 365
Y0 = 1_735_689_600 // 60  # 2025-01-01T00:00Z, in minutes
NS_MIN = 60 * 10**9
PER_DAY = 86_400
TYPE_P = {"icmp": ICMP_V4.key(), "stamp": STAMP_V4.key()}
MINUTE = ROLLUP_COLUMNS.index("minute")
PATH = ROLLUP_COLUMNS.index("path_id")


def _delay(rng: np.random.Generator, median_ms: float, n: int) -> DelayStats:
    """``n`` lognormal delays (sigma 0.1) around ``median_ms``, as sketch bucket counts."""
    sk = DDSketch()
    mu = math.log(median_ms * 1e6 * rng.lognormal(0, 0.02))
    lo, hi = sk.key(math.exp(mu - 0.5)), sk.key(math.exp(mu + 0.5))
    keys = np.arange(lo, hi + 1)
    probs = np.diff(ndtr((np.log(sk.gamma) * np.arange(lo - 1, hi + 1) - mu) / 0.1))
    counts = rng.multinomial(n, probs / probs.sum())
    sk.buckets = {int(k): int(c) for k, c in zip(keys, counts, strict=True) if c}
    sk.count = n
    values = [sk.value(k) for k in sk.buckets]
    return DelayStats(n=n, min=int(min(values)), max=int(max(values)),
                      sum=float(sum(v * c for v, c in zip(values, sk.buckets.values(),
                                                          strict=True))),
                      sketch=sk, below={1_000_000: 0, 3_000_000: 0})


def day_template(rng: np.random.Generator, path: MeshPath, median_ms: float, loss: float,
                 minutes: int = DAY_MIN) -> MinuteRollup:
    """One synthetic rollup of ``minutes`` (a day by default) of one path, at one probe a
    second."""
    sent = minutes * 60
    received = int(rng.binomial(sent, 1 - loss))
    r = MinuteRollup(path.id, path.src_site, path.src_carrier, path.dst_site, path.dst_carrier,
                     path.method, TYPE_P[path.method], 0, sent=sent, received=received,
                     lost=sent - received, loss_periods=sent - received, loss_period_max=1,
                     tmax_ns=3 * 10**9)
    r.rtt = _delay(rng, median_ms, received)
    if path.method == "stamp":
        r.fwd, r.bwd = _delay(rng, median_ms / 2, received), _delay(rng, median_ms / 2, received)
        r.clock_error_max_ns = 50_000
    return r


def _medians(rng: np.random.Generator, path: MeshPath, same_city: bool) -> tuple[float, float]:
    """(baseline, current) median RTT in ms of a path."""
    if path.inter:
        base = rng.uniform(20, 40)
        return base, base * rng.uniform(0.08, 0.3)
    base = rng.uniform(0.4, 1.2) if same_city else rng.uniform(4, 8)
    return base, base


def load_synthetic(store: Writer, tier: str, rows: Sequence[Sequence[object]], note: str) -> int:
    """Load synthetic rollup rows into ``tier`` (``Writer.load_rows``: one *load* link whose
    note is ``note``, which must say "synthetic"); the rows loaded."""
    if "synthetic" not in note:
        raise ValueError(f"a synthetic load's note must say so: {note!r}")
    return store.load_rows(tier, rows, note)


def write_year(db: str | Path, paths: Sequence[MeshPath], seed: int, note: str,
               same_city: Callable[[MeshPath], bool] = lambda p: False,
               busy_hours: Callable[[MeshPath], Sequence[int]] = lambda p: (),
               progress: int = 0, chunk: int = 50_000, *, first_min: int = Y0,
               days: int = YEAR, templates: int = 8) -> tuple[int, int]:
    """Day tiers of a baseline window (``days`` days from the UTC minute ``first_min``) and a
    current window (the ``days`` days after it) for every path, and hour tiers of the UTC
    hours ``busy_hours(path)`` of each of those days (a busy-hour fault rule's calendar);
    loaded ``chunk`` rows at a time (a load link each, its note ``note``, which must say
    "synthetic"). Returns (day rows, hour rows)."""
    rng = np.random.default_rng(seed)
    store = open_store(db)
    assert isinstance(store, Writer)
    pending: dict[str, list[list[object]]] = {"day": [], "hour": []}
    done = {"day": 0, "hour": 0}

    def flush(tier: str, at_least: int) -> None:
        if len(pending[tier]) >= max(at_least, 1):
            done[tier] += load_synthetic(store, tier, pending[tier], note)
            pending[tier] = []

    for k, path in enumerate(paths):
        for window, (ms, loss) in enumerate(zip(_medians(rng, path, same_city(path)),
                                                (0.01, 0.004), strict=True)):
            first = first_min + window * days * DAY_MIN
            pending["day"] += _days(rng, path, ms, loss, first, DAY_MIN, days, templates)
            for hour in busy_hours(path):
                pending["hour"] += _days(rng, path, ms, loss, first + hour * 60, 60, days,
                                         templates)
        flush("day", chunk)
        flush("hour", chunk)
        if progress and k % progress == progress - 1:
            print(f"  {k + 1} paths written", flush=True)
    flush("day", 1)
    flush("hour", 1)
    store.close()
    return done["day"], done["hour"]


def _days(rng: np.random.Generator, path: MeshPath, ms: float, loss: float, first: int,
          minutes: int, days: int, n: int) -> list[list[object]]:
    """``days`` rows of ``minutes`` each, one a day from minute ``first``, drawn from ``n``
    templates."""
    templates = [rollup_row(day_template(rng, path, ms, loss, minutes)) for _ in range(n)]
    rows = []
    for d in range(days):
        row = list(templates[int(rng.integers(n))])
        row[MINUTE] = first + d * DAY_MIN
        rows.append(row)
    return rows
