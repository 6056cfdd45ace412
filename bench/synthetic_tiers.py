"""Shared by bench.store_tiers and bench.province: a synthetic year of day tiers written straight
into a store (SQLite file or PostgreSQL URL) through ``Writer.load_rows``.

Not a benchmark of its own. Each (path, method) gets a baseline year (from ``Y0``) and a
current year (the 365 days after it) of day rollups: 86,400 probes a day, lognormal delays as
DDSketch bucket counts, 8 synthetic days per path and window, each stored day drawn from them.
Inter-carrier paths are 20-40 ms in the baseline and 8-30 % of that in the current year (the
detour through another province removed); intra-carrier ones keep their delay. A STAMP path
also carries one-way delays (half the round trip each way, clocks synchronised, 50 us error
bound). Every load is a chain *load* link whose note says the rows are synthetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from analyzer.rollups.model import DelayStats, MinuteRollup
from analyzer.rollups.rows import ROLLUP_COLUMNS, rollup_row
from analyzer.rollups.sketch import DDSketch
from analyzer.store import open_store
from analyzer.store.writes import Writer
from inventory.loader import default_inventory, load
from inventory.topology import Topology
from ixmeter.record import TypeP, path_id

DAY_MIN = 1440
YEAR = 365
Y0 = 1_735_689_600 // 60  # 2025-01-01T00:00Z, in minutes
NS_MIN = 60 * 10**9
PER_DAY = 86_400
TYPE_P = {"icmp": TypeP("icmp", 4, 64).key(), "stamp": TypeP("udp", 4, 44, 0, 862).key()}
MINUTE = ROLLUP_COLUMNS.index("minute")
PATH = ROLLUP_COLUMNS.index("path_id")


@dataclass(frozen=True, slots=True)
class MeshPath:
    """One measured directed path: its two (site, carrier) ends and the method measuring it."""

    src_site: str
    src_carrier: str
    dst_site: str
    dst_carrier: str
    method: str = "icmp"

    @property
    def inter(self) -> bool:
        return self.src_carrier != self.dst_carrier

    @property
    def id(self) -> str:
        return path_id(self.src_site, self.src_carrier, self.dst_site, self.dst_carrier)


def inventory_paths(limit: int) -> list[MeshPath]:
    """ICMP paths between the packaged inventory's Hunan (site, carrier) ends, inter-carrier
    first, one in five intra-carrier (what bench.store_tiers measures)."""
    inv = load(default_inventory())
    topo = Topology(inv)
    ends = sorted({(s.id, c) for s in inv.sites for c in s.carriers
                   if topo.province_of(s.id) == "HN"})
    pairs = [MeshPath(a, ac, b, bc) for a, ac in ends for b, bc in ends if (a, ac) != (b, bc)]
    inter = sorted((p for p in pairs if p.inter), key=lambda p: p.id)
    intra = sorted((p for p in pairs if not p.inter), key=lambda p: p.id)
    take = min(len(intra), limit // 5)
    return inter[:limit - take] + intra[:take]


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


def write_year(db: str | Path, paths: Sequence[MeshPath], seed: int, note: str,
               same_city: Callable[[MeshPath], bool] = lambda p: False,
               busy_hours: Callable[[MeshPath], Sequence[int]] = lambda p: (),
               progress: int = 0, chunk: int = 50_000) -> tuple[int, int]:
    """Day tiers of a baseline year (Y0) and a current year (Y0 + 365 d) for every path, and
    hour tiers of the UTC hours ``busy_hours(path)`` of each of those days (a busy-hour fault
    rule's calendar); loaded ``chunk`` rows at a time (a load link each). Returns (day rows,
    hour rows)."""
    rng = np.random.default_rng(seed)
    store = open_store(db)
    assert isinstance(store, Writer)
    pending: dict[str, list[list[object]]] = {"day": [], "hour": []}
    done = {"day": 0, "hour": 0}

    def flush(tier: str, at_least: int) -> None:
        if len(pending[tier]) >= max(at_least, 1):
            done[tier] += store.load_rows(tier, pending[tier], note)
            pending[tier] = []

    for k, path in enumerate(paths):
        for window, (ms, loss) in enumerate(zip(_medians(rng, path, same_city(path)),
                                                (0.01, 0.004), strict=True)):
            first = Y0 + window * YEAR * DAY_MIN
            pending["day"] += _days(rng, path, ms, loss, first, DAY_MIN)
            for hour in busy_hours(path):
                pending["hour"] += _days(rng, path, ms, loss, first + hour * 60, 60)
        flush("day", chunk)
        flush("hour", chunk)
        if progress and k % progress == progress - 1:
            print(f"  {k + 1} paths written", flush=True)
    flush("day", 1)
    flush("hour", 1)
    store.close()
    return done["day"], done["hour"]


def _days(rng: np.random.Generator, path: MeshPath, ms: float, loss: float, first: int,
          minutes: int) -> list[list[object]]:
    """A year of rows of ``minutes`` each, one a day from minute ``first``, drawn from 8
    templates."""
    templates = [rollup_row(day_template(rng, path, ms, loss, minutes)) for _ in range(8)]
    rows = []
    for d in range(YEAR):
        row = list(templates[int(rng.integers(8))])
        row[MINUTE] = first + d * DAY_MIN
        rows.append(row)
    return rows
