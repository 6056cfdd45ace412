"""What every page reads from: the store (and the baseline's store, when it is kept apart), the
inventory and the two windows, set once by :func:`dashboard.app.create_app` (never at import
time) and cached per window.

Pages call :func:`get`; they never import from ``app.py``. Store access is serialised with a
lock because the server runs callbacks on several threads over one SQLite connection.

Live (``ixmeter dashboard --live``, what the demo starts before its probes): the caches are
dropped once a minute while the current window is under way (and for a settling time after
it), so every page sees the minutes stored since; after that the data is final and nothing is
read again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from analyzer import views
from analyzer.store.base import ReadStore
from analyzer.synthetic.results import SYNTHETIC_PREFIX
from analyzer.views import RollupIndex, VerdictRow, Window
from inventory.loader import default_inventory
from inventory.topology import Topology
from ixmeter.core.errors import IxmeterError

if TYPE_CHECKING:
    from analyzer.evaluate import Evaluation

MINUTE_NS = 60_000_000_000
LIVE_SETTLE_NS = 2 * MINUTE_NS  # uploads of a window's last minute arrive within this


@dataclass
class Context:
    store: ReadStore
    topo: Topology
    baseline: Window
    current: Window
    now_ns: Callable[[], int] = field(default=time.time_ns)
    inventory_path: Path = field(default_factory=default_inventory)
    replicates: int = 2000
    baseline_store: ReadStore | None = None  # the baseline's own store (--baseline-db)
    live: bool = False
    lock: threading.RLock = field(default_factory=threading.RLock)
    _generation: int = -1
    _indexes: dict[tuple[str, Window], RollupIndex] = field(default_factory=dict)
    _evaluations: dict[tuple[Window, Window], Evaluation] = field(default_factory=dict)
    _trends: dict[tuple[str, str], tuple[list[int], list[float | None]]] = field(
        default_factory=dict)
    _synthetic: str | None = None

    @property
    def tz(self) -> str:
        """The local time every page shows and buckets in: the inventory's
        (:attr:`inventory.schema.Inventory.timezone`, its province's zone)."""
        return self.topo.inv.timezone

    def generation(self) -> int:
        """The minute the cached figures are for while live, else -1 (final data)."""
        now = self.now_ns()
        if not self.live or now >= self.current.end_ns + LIVE_SETTLE_NS:
            return -1
        return now // MINUTE_NS

    def _fresh(self) -> None:
        """Drop the caches when a new minute has begun (live only); call with the lock."""
        gen = self.generation()
        if gen != self._generation:
            self._generation = gen
            self._indexes.clear()
            self._evaluations.clear()
            self._trends.clear()

    def _index(self, role: str, store: ReadStore, window: Window) -> RollupIndex:
        with self.lock:
            self._fresh()
            if (role, window) not in self._indexes:
                self._indexes[(role, window)] = views.load_index(store, window, self.tz)
            return self._indexes[(role, window)]

    def index(self, window: Window) -> RollupIndex:
        """A window of the (current) store."""
        return self._index("current", self.store, window)

    def cur_index(self) -> RollupIndex:
        return self.index(self.current)

    def base_index(self) -> RollupIndex:
        """The baseline window, from the baseline's store when it has one."""
        return self._index("baseline", self.baseline_store or self.store, self.baseline)

    def warm(self) -> None:
        """Load both windows, evaluate, draw the trends and compute the matrices once, so that
        the first page view and every callback are only rendering."""
        base, cur = self.base_index(), self.cur_index()
        self.evaluation()
        for target in self.topo.inv.policy_targets:
            self.trend(target.id)
        with self.lock:
            views.warm_matrices(self.topo, base, cur,
                                [tg.scope for tg in self.topo.inv.policy_targets])
            views.probe_rows(self.store, self.topo, cur, self.now_ns())  # coverage, cached

    def trend(self, target_id: str) -> tuple[list[int], list[float | None]]:
        """One policy target's values over the current window at the window's resolution,
        for the verdict row that sets its badge (:func:`headline`; the whole scope when no
        row was evaluable), cached."""
        with self.lock:
            self._fresh()
            target = next(t for t in self.topo.inv.policy_targets if t.id == target_id)
            head = views.headline([r for r in self.verdicts() if r.target_id == target_id])
            group = (head.group, head.type_p) if head else None
            key = (target_id, f"{group}")
            if key not in self._trends:
                self._trends[key] = views.trend(
                    self.topo, target, self.base_index(), self.cur_index(), group,
                    views.display_bucket(self.current))
            return self._trends[key]

    def evaluation(self, base: Window | None = None, cur: Window | None = None) -> Evaluation:
        """The analyzer's evaluation of every policy target for two windows (default: the
        shared ones), cached."""
        key = (base or self.baseline, cur or self.current)
        with self.lock:
            self._fresh()
            if key not in self._evaluations:
                self._evaluations[key] = views.evaluate(self.store, self.topo.inv, key[0],
                                                        key[1], self.replicates,
                                                        self.baseline_store)
            return self._evaluations[key]

    def verdicts(self, base: Window | None = None, cur: Window | None = None
                 ) -> list[VerdictRow]:
        return views.verdict_rows(self.evaluation(base, cur))

    def live_minutes(self) -> tuple[list[views.Minute], list[views.Minute] | None]:
        """Inter-carrier minutes of the current window (current store), and of the same
        window in the baseline's store when it has one and both windows are the same."""
        with self.lock:
            cur = views.inter_carrier_minutes(self.store, self.topo, self.current)
            base = None
            if self.baseline_store is not None and self.baseline == self.current:
                base = views.inter_carrier_minutes(self.baseline_store, self.topo,
                                                   self.current)
            return cur, base

    def synthetic(self) -> str | None:
        """Why the data shown is synthetic (the inventory says so, or the store holds
        generated probes' results), or None for measured data. Checked once."""
        with self.lock:
            if self._synthetic is None:
                ids = [h.probe_id for s in (self.store, self.baseline_store) if s is not None
                       for h in s.probe_health()]
                made = sorted(i for i in ids if i.startswith(SYNTHETIC_PREFIX))
                self._synthetic = self.topo.inv.synthetic or (
                    f"results of generated probes ({', '.join(made[:3])}"
                    f"{', ...' if len(made) > 3 else ''}), not measurements" if made else "")
            return self._synthetic or None


_current: Context | None = None


def configure(ctx: Context) -> None:
    global _current
    _current = ctx


def get() -> Context:
    if _current is None:
        raise IxmeterError("the dashboard has no data source",
                           hint="start it with 'ixmeter dashboard --db FILE'")
    return _current
