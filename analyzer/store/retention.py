"""Retention: deleting raw results of folded batches and old minute or hour rollups.

:meth:`Pruning.retain` applies a :class:`~analyzer.store.base.Retention` policy: raw results
(:meth:`Pruning.prune`), then minute and hour rollups (:meth:`Pruning.prune_rollups`), each cut
a *prune* link that commits to the tables' new states; day rollups, links and the chain stay.
"""

from __future__ import annotations

from analyzer.rollups.model import NS_PER_MINUTE
from analyzer.store import chain
from analyzer.store.base import Retention
from analyzer.store.connection import gc_paused
from analyzer.store.evidence import LtHash
from analyzer.store.folding import check_rows
from analyzer.store.foldset import NS_PER_DAY
from analyzer.store.ledger import Ledger
from analyzer.store.schema import GROUP_TIERS, STORED_ROLLUP_COLUMNS, TIERS

PRUNE_UNITS = 10  # units of a tier read (checked, hashed out) at a time by a rollup prune


class Pruning(Ledger):
    """The retention half of the writer."""

    def prune(self, before_ns: int) -> int:
        """Retention of raw results: delete the raw results of folded batches sent wholly
        before ``before_ns``; their links, the rollups and the chain stay, and a prune link
        records the cut. Returns the results deleted."""
        self.fold_pending()  # never delete raw results whose rollups are not folded
        with self.db.write():
            through = self.folded_through()
            found = self.db.execute(
                "SELECT idx, n FROM links WHERE kind = ? AND idx <= ? AND last_ns < ? AND "
                "EXISTS (SELECT 1 FROM blobs WHERE bid = links.idx)",
                (chain.BATCH, through, before_ns)).fetchall()
            if not found:
                return 0
            self.db.executemany("DELETE FROM blobs WHERE bid = ?", [(r[0],) for r in found])
            self._commit_state(chain.PRUNE, self._state(), {
                "raw_before_ns": before_ns, "through": through, "batches": len(found),
                "results": sum(int(r[1]) for r in found)})
            return sum(int(r[1]) for r in found)

    def prune_rollups(self, before_ns: int, tier: str = "minute") -> int:
        """Retention of a rollup tier (minute or hour): delete its rows of UTC days wholly
        before ``before_ns`` (rounded down to a day, so every coarser unit that keeps rows of
        this tier keeps all of them); the coarser tiers stay. A prune link records the table,
        the cut and the table's new state (the hour tier's target-group rows are cut with
        it). Returns the rows deleted."""
        if tier not in TIERS or tier == "day":
            raise ValueError(f"rollup retention is for the minute and hour tiers, not {tier!r}")
        table = TIERS[tier][0]
        day = before_ns // NS_PER_MINUTE // 1440 * 1440
        self.fold_pending()
        step = PRUNE_UNITS * TIERS[tier][1]  # minutes read at a time: bounded memory
        with gc_paused(), self.db.write():
            first = f"SELECT MIN(minute) FROM {table} WHERE minute >= ? AND minute < ?"
            start = self.db.execute(first, (-(2**62), day)).fetchone()[0]
            if start is None:
                return 0
            state, n = self._state(), 0
            while start is not None:  # a run of units at a time, skipping gaps
                end = min(int(start) + step, day)
                rows = self.db.execute(f"SELECT {', '.join(STORED_ROLLUP_COLUMNS)} FROM "
                                       f"{table} WHERE minute >= ? AND minute < ?",
                                       (start, end)).fetchall()
                check_rows(table, rows)
                state[table].remove(table, [bytes(r[-1]) for r in rows])
                n += len(rows)
                start = self.db.execute(first, (end, day)).fetchone()[0]
            self.db.execute(f"DELETE FROM {table} WHERE minute < ?", (day,))
            groups = self._prune_groups(tier, day, state)
            self._commit_state(chain.PRUNE, state, {"table": table, "minute_before": day,
                                                    "rows": n, "group_rows": groups})
            return n

    def _prune_groups(self, tier: str, day: int, state: dict[str, LtHash]) -> int:
        """The target-group rows of ``tier`` before ``day`` go with the path rows they merge."""
        if tier not in GROUP_TIERS:
            return 0
        table = GROUP_TIERS[tier][0]
        gone = self.db.execute(f"SELECT digest FROM {table} WHERE minute < ?",
                               (day,)).fetchall()
        state[table].remove(table, [bytes(r[0]) for r in gone])
        self.db.execute(f"DELETE FROM {table} WHERE minute < ?", (day,))
        return len(gone)

    def retain(self, policy: Retention, now_ns: int) -> dict[str, int]:
        """Apply a retention policy at ``now_ns``: raw results (:meth:`prune`), then minute and
        hour rollups (:meth:`prune_rollups`), each cut its own prune link; day rollups are
        kept for ever. Returns what each deleted (results, rows)."""
        out = {}
        for what, days in (("raw", policy.raw_days), ("minute", policy.minute_days),
                           ("hour", policy.hour_days)):
            if days:
                cut = now_ns - int(days * NS_PER_DAY)
                out[what] = self.prune(cut) if what == "raw" else self.prune_rollups(cut, what)
        return out

