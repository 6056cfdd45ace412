"""What every page reads from: the store, the inventory and the two windows, set once by
:func:`dashboard.app.create_app` (never at import time) and cached per window.

Pages call :func:`get`; they never import from ``app.py``. Store access is serialised with a
lock because Flask serves callbacks from several threads and one SQLite connection is shared.
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
from analyzer.views import RollupIndex, VerdictRow, Window
from inventory.loader import default_inventory
from inventory.topology import Topology
from ixmeter.errors import IxmeterError

if TYPE_CHECKING:
    from analyzer.evaluate import Evaluation


@dataclass
class Context:
    store: ReadStore
    topo: Topology
    baseline: Window
    current: Window
    now_ns: Callable[[], int] = field(default=time.time_ns)
    inventory_path: Path = field(default_factory=default_inventory)
    replicates: int = 2000
    lock: threading.RLock = field(default_factory=threading.RLock)
    _indexes: dict[Window, RollupIndex] = field(default_factory=dict)
    _evaluations: dict[tuple[Window, Window], Evaluation] = field(default_factory=dict)
    _trends: dict[str, tuple[list[int], list[float | None]]] = field(default_factory=dict)

    def index(self, window: Window) -> RollupIndex:
        with self.lock:
            if window not in self._indexes:
                self._indexes[window] = views.load_index(self.store, window)
            return self._indexes[window]

    def warm(self) -> None:
        """Load both windows, evaluate and draw the trends once, so that the first page view
        is only rendering."""
        self.index(self.baseline)
        self.index(self.current)
        for target in self.topo.inv.policy_targets:
            self.trend(target.id)
        self.evaluation()

    def trend(self, target_id: str) -> tuple[list[int], list[float | None]]:
        """Daily values of one policy target over the shared windows (cached)."""
        with self.lock:
            if target_id not in self._trends:
                target = next(t for t in self.topo.inv.policy_targets if t.id == target_id)
                self._trends[target_id] = views.trend(
                    self.topo, target, self.index(self.baseline), self.index(self.current))
            return self._trends[target_id]

    def evaluation(self, base: Window | None = None, cur: Window | None = None) -> Evaluation:
        """The analyzer's evaluation of every policy target for two windows (default: the
        shared ones), cached."""
        key = (base or self.baseline, cur or self.current)
        with self.lock:
            if key not in self._evaluations:
                self._evaluations[key] = views.evaluate(self.store, self.topo.inv, key[0],
                                                        key[1], self.replicates)
            return self._evaluations[key]

    def verdicts(self, base: Window | None = None, cur: Window | None = None
                 ) -> list[VerdictRow]:
        return views.verdict_rows(self.evaluation(base, cur))


_current: Context | None = None


def configure(ctx: Context) -> None:
    global _current
    _current = ctx


def get() -> Context:
    if _current is None:
        raise IxmeterError("the dashboard has no data source",
                           hint="start it with 'ixmeter dashboard --db FILE'")
    return _current
