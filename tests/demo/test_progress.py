"""The progress line's per-window counts: settled minutes counted once, the rest re-read, and
the total always equal to a full read."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from analyzer.store.base import Query
from ixmeter.demo.plan import MINUTE_NS, NS, plan_timeline
from ixmeter.demo.runner import Progress, Run


@dataclass
class _Rollup:
    minute: int
    sent: int
    errors: int = 0


class _Store:
    """Rollups of ``per_minute`` results in every minute up to ``upto_ns``; counts reads."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute, self.upto_ns, self.reads = per_minute, 0, 0

    def read_rollups(self, q: Query) -> list[_Rollup]:
        self.reads += 1
        first, last = q.start_ns // MINUTE_NS, (min(q.end_ns, self.upto_ns) - 1) // MINUTE_NS
        return [_Rollup(m, self.per_minute) for m in range(first, last + 1)]

    def close(self) -> None:
        pass


def test_cached_counts_equal_a_full_read(tmp_path: Path) -> None:
    t0 = 1_795_000_000 * NS
    timeline = plan_timeline(t0, 1260)
    run = Run(out=tmp_path, inventory=tmp_path / "inv.yaml", sites=[], duration_s=1260,
              log=io.StringIO())
    progress = Progress(run, timeline)
    store = _Store(per_minute=100)
    progress._store = store
    now = timeline.baseline[0]
    while now < timeline.end_ns + MINUTE_NS:
        store.upto_ns = now
        assert progress.stored(now) == _fresh(progress, store).stored()
        now += 30 * NS
    assert progress.stored() == {"baseline": 1000, "current": 1000}
    later = timeline.end_ns + 2 * MINUTE_NS
    assert progress.stored(later) == {"baseline": 1000, "current": 1000}
    reads = store.reads
    progress.stored(later)
    assert store.reads == reads  # both windows settled: nothing is read again


def _fresh(template: Progress, store: _Store) -> Progress:
    fresh = Progress(template.run, template.timeline)
    fresh._store = store
    return fresh
