"""The demo's progress line, read back from the two stores (read-only): per copy of the
network, the results stored in the window so far and the live inter-carrier median RTT and
loss ratio of the latest minute (:func:`analyzer.views.inter_carrier_minutes`), and the
probes' spool depth from their heartbeats."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ixmeter.demo.plan import MINUTE_NS, NS, Timeline

if TYPE_CHECKING:
    from ixmeter.demo.network import Network

SETTLED_S = 90.0  # a minute's rollup no longer changes this long after it ended
COMPLETE_S = 5.0  # a minute is shown as the latest once it ended this long ago (uploads lag)
LABEL = {"baseline": "baseline (detour)", "current": "current (direct)"}


class Counts:
    """Results stored in one store's window: minutes that ended over ``SETTLED_S`` before
    ``now_ns`` no longer change and are counted once; the rest is re-read each time."""

    def __init__(self, store: Any, window: tuple[int, int]) -> None:
        self.store, self.window = store, window
        self._upto, self._count = window[0], 0

    def stored(self, now_ns: int | None = None) -> int:
        a, b = self.window
        if now_ns is None:
            return self._read(a, b)
        settled = min(b, (now_ns - int(SETTLED_S * NS)) // MINUTE_NS * MINUTE_NS)
        if settled > self._upto:
            self._count += self._read(self._upto, settled)
            self._upto = settled
        return self._count + (self._read(self._upto, b) if self._upto < b else 0)

    def _read(self, a: int, b: int) -> int:
        from analyzer.store.base import Query

        return sum(r.sent + r.errors for r in self.store.read_rollups(Query(a, b)))


class Progress:
    """The line, for both copies of the network."""

    def __init__(self, networks: Sequence[Network], timeline: Timeline, inventory: Path) -> None:
        self.networks, self.timeline, self.inventory = list(networks), timeline, inventory
        self._stores: dict[str, Any] = {}
        self._counts: dict[str, Counts] = {}
        self._topo: Any = None

    def _open(self) -> None:
        from analyzer.store import open_reader
        from inventory.loader import load
        from inventory.topology import Topology

        if self._topo is None:
            self._topo = Topology(load(self.inventory))
        for net in self.networks:
            if net.role not in self._stores and net.db.exists():
                self._stores[net.role] = open_reader(net.db)
                self._counts[net.role] = Counts(self._stores[net.role], self.timeline.window)

    def stored(self, now_ns: int | None = None) -> dict[str, int]:
        """Results stored per copy in the window (``now_ns`` None: everything read again)."""
        self._open()
        return {role: c.stored(now_ns) for role, c in self._counts.items()}

    def latest(self, role: str, now_ns: int) -> tuple[float | None, float | None]:
        """(median RTT ms, loss ratio) of the inter-carrier paths in the latest complete
        minute of ``role``'s store, or of the minute under way before the first completes."""
        from analyzer.views import Window, inter_carrier_minutes

        store = self._stores.get(role)
        if store is None:
            return None, None
        a = max(self.timeline.window[0], now_ns // MINUTE_NS * MINUTE_NS - 2 * MINUTE_NS)
        minutes = inter_carrier_minutes(store, self._topo, Window(a, now_ns + MINUTE_NS))
        done = [m for m in minutes if m.t_ns + MINUTE_NS + int(COMPLETE_S * NS) <= now_ns]
        pick = done[-1] if done else (minutes[-1] if minutes else None)
        return (pick.rtt_median_ms, pick.loss_ratio) if pick else (None, None)

    def spool_depth(self) -> int | None:
        depths = [h.spool_depth for s in self._stores.values() for h in s.probe_health()
                  if h.spool_depth is not None]
        return sum(depths) if depths else None

    def line(self, now_ns: int) -> str:
        t = self.timeline
        stored = self.stored(now_ns)
        parts = []
        for net in self.networks:
            rtt, loss = self.latest(net.role, now_ns)
            rtt_s = f"{rtt:.1f} ms" if rtt is not None else "- ms"
            loss_s = f"{loss * 100:.2f} %" if loss is not None else "- %"
            parts.append(f"{LABEL.get(net.role, net.role)} {rtt_s} {loss_s} loss, "
                         f"{stored.get(net.role, 0):,} stored")
        depth = self.spool_depth()
        spool = f" | spools {depth}" if depth is not None else ""
        elapsed = (now_ns - t.start_ns) / NS
        total = (t.stop_ns - t.start_ns) / NS
        return (f"[{_mmss(elapsed)} / {_mmss(total)}] {t.phase(now_ns):<9} inter-carrier "
                f"median RTT: " + " | ".join(parts) + spool)

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()
        self._counts.clear()


def _mmss(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 60:d}:{s % 60:02d}"
