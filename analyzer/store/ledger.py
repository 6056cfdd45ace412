"""The writer's ledger: appending links to the hash chain and keeping the evidence state.

Every write transaction ends in a link (:mod:`analyzer.store.chain`): a *batch* link for an
ingested batch (:mod:`analyzer.store.ingest`), or a *fold*, *group*, *prune* or *load* link that
commits to every evidence table's LtHash state (:mod:`analyzer.store.evidence`), which the next
such transaction checks before it builds on it (:meth:`Ledger._state`). Target-group rows never
outlive the path rows they merge (:meth:`Ledger._drop_groups`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from analyzer.store import chain
from analyzer.store.evidence import EvidenceError, LtHash
from analyzer.store.reads import Reader
from analyzer.store.schema import (
    EVIDENCE_TABLES,
    GROUP_TIERS,
    LINK_COLUMNS,
    STORED_ROLLUP_COLUMNS,
    TIERS,
)

_LINK_INSERT = (f"INSERT INTO links ({', '.join(LINK_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(LINK_COLUMNS))})")
ROW_INSERT = (f"({', '.join(STORED_ROLLUP_COLUMNS)}) "
              f"VALUES ({', '.join('?' * len(STORED_ROLLUP_COLUMNS))})")


class Ledger(Reader):
    """Chain appends and evidence state, inside the writer's transactions (``db.write()``)."""

    def fold_pending(self, everything: bool = False) -> int:
        """Fold the batches not folded yet (:meth:`analyzer.store.folds.Folds.fold_pending`)."""
        raise NotImplementedError

    def _append(self, kind: str, at_ns: int, body: str, probe_id: str | None = None,
                batch_id: str | None = None,
                columns: tuple[Any, ...] = (None, None, None, None, None, None)
                ) -> tuple[int, str]:
        """Append a link (inside the write transaction); its index and head."""
        prev = self.chain_head()
        head = chain.head_of(prev.head, body, kind, probe_id or "", batch_id or "", at_ns)
        self.db.execute(_LINK_INSERT, (prev.length + 1, kind, at_ns, probe_id, batch_id,
                                       *columns, body, prev.head, head))
        return prev.length + 1, head


    # -- evidence state -------------------------------------------------------------------
    def _state(self) -> dict[str, LtHash]:
        """Each evidence table's LtHash, checked against the last fold, prune or load link."""
        stored = {tbl: LtHash.from_bytes(bytes(data)) for tbl, data in
                  self.db.execute("SELECT tbl, state FROM evidence_state").fetchall()}
        state = {t: stored.get(t, LtHash()) for t in EVIDENCE_TABLES}
        committed = self.committed_state()
        for table, lt in state.items():
            if lt.hexdigest() != committed.get(table, LtHash().hexdigest()):
                raise EvidenceError(f"{table}: the stored evidence state does not match the "
                                    "chain's last fold, prune or load link (the store was edited); "
                                    "run `ixmeter verify`")
        return state

    def _commit_state(self, kind: str, state: Mapping[str, LtHash],
                      fields: Mapping[str, Any]) -> None:
        """Store the tables' states and append the link committing to them."""
        self.db.execute("DELETE FROM evidence_state")
        self.db.executemany("INSERT INTO evidence_state (tbl, state) VALUES (?, ?)",
                            [(t, lt.to_bytes()) for t, lt in state.items()])
        detail = chain.detail_of(kind, fields, {t: lt.hexdigest() for t, lt in state.items()})
        self._append(kind, time.time_ns(), chain.detail_body(detail),
                     columns=(None, None, None, None, None, detail))


    # -- target-group rows ------------------------------------------------------------------
    def _drop_groups(self, units: Mapping[str, set[int]], state: dict[str, LtHash]) -> None:
        """Delete the group rows of the hour and day units whose path rows just changed
        (``units``: path tier table -> unit minutes), updating the group tables' states: a
        group row never outlives the path rows it merges; the next build remakes it."""
        for tier, (group_table, _size) in GROUP_TIERS.items():
            changed = sorted(units.get(TIERS[tier][0], ()))
            for at in range(0, len(changed), 500):
                part = changed[at:at + 500]
                marks = ", ".join("?" * len(part))
                gone = self.db.execute(f"SELECT digest FROM {group_table} WHERE minute IN "
                                       f"({marks})", part).fetchall()
                if gone:
                    state[group_table].remove(group_table, [bytes(r[0]) for r in gone])
                    self.db.execute(f"DELETE FROM {group_table} WHERE minute IN ({marks})",
                                    part)

