"""``ixmeter verify``: check that the store holds exactly what its hash chain commits to.

Read-only, in one snapshot. It checks, and names what it finds:

1. the chain: every link's index, previous head, body (recomputed from the batch's columns or
   the link's detail) and head, from genesis (:func:`analyzer.store.chain.walk`);
2. raw results: every batch's stored blobs and their streams against the batch's digest; a
   batch whose raw results are gone must be covered by a later prune link whose cut is after
   the batch's last send time;
3. the evidence tables (minute, hour and day rollups): every row's figures against its digest
   (naming table and key), and each table's LtHash, recomputed from its rows, against the state
   the last fold, prune or load link committed to (a row added, removed, or edited with a recomputed
   digest changes it);
4. the folds: every fold link names earlier batches, none folded twice, and its watermark
   (every batch at or below it folded) is true (:mod:`analyzer.store.foldset`);
5. with ``deep``: the rollups rebuilt from the stored raw results of every folded batch, in
   chain order, compared row by row for the units wholly after the retention cuts (the raw
   results' cut, and each rollup table's own cut).

What it cannot prove: that the chain itself is the one the collector built. An operator who
rewrites the whole store can build a consistent chain; a head published earlier (a report's
provenance, a signed head export) pins everything before it (``find_head``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from analyzer.columns import blobs_digest
from analyzer.rollups.rows import ROLLUP_COLUMNS
from analyzer.rollups.tables import TierTables
from analyzer.store import chain
from analyzer.store.base import Report
from analyzer.store.connection import Db
from analyzer.store.evidence import LtHash, row_digest
from analyzer.store.folding import Row, key_of, key_text, plan
from analyzer.store.foldset import ids_of_ranges
from analyzer.store.schema import EVIDENCE_TABLES, LINK_COLUMNS, STORED_ROLLUP_COLUMNS, TIERS
from analyzer.store.streams import IDENT_COLUMNS, ids_of, skey_of
from ixmeter.core.errors import RecordError


class Reader(Protocol):
    """What verification reads through (:class:`analyzer.store.reads.Reader`)."""

    db: Db

    def snapshot(self) -> AbstractContextManager[None]: ...

    def batch_tables(self, bid: int, thresholds: Sequence[int]) -> TierTables: ...

_WIDTH = len(ROLLUP_COLUMNS)
_CHUNK = 20_000
_S_COLS = ", ".join(IDENT_COLUMNS)


@dataclass(frozen=True, slots=True)
class _Stored:
    """A link row as stored."""

    idx: int
    kind: str
    at_ns: int
    probe_id: str | None
    batch_id: str | None
    n: int | None
    first_ns: int | None
    last_ns: int | None
    thresholds: str | None
    blobs_sha256: str | None
    detail: str | None
    body_sha256: str
    prev_head: str
    head: str

    def link(self) -> chain.Link:
        if self.kind == chain.BATCH:
            body = chain.batch_body(int(self.n or 0), int(self.first_ns or 0),
                                    int(self.last_ns or 0), self.thresholds or "",
                                    self.blobs_sha256 or "")
        else:
            body = chain.detail_body(self.detail or "")
        return chain.Link(int(self.idx), self.kind, int(self.at_ns), self.probe_id or "",
                          self.batch_id or "", body, self.body_sha256, self.prev_head,
                          self.head)

    def fields(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.detail or "{}"))
        except ValueError:
            return {}


def verify(reader: Reader, find_head: str | None = None, deep: bool = False) -> Report:
    """Check the store against its chain (module docstring)."""
    report = Report()
    with reader.snapshot():
        links = [_Stored(*row) for row in reader.db.execute(
            f"SELECT {', '.join(LINK_COLUMNS)} FROM links ORDER BY idx").fetchall()]
        walked = chain.walk((s.link() for s in links), find_head)
        report.length, report.head, report.found_at = walked.length, walked.head, walked.found_at
        if walked.broken is not None:
            report.add(f"BROKEN after {walked.length} good links: {walked.broken}")
            return report
        _check_raw(reader, links, report)
        committed = _last_state(links)
        _check_tables(reader, committed, report)
        folded = _check_folds(links, report)
        report.unfolded = sum(s.kind == chain.BATCH and s.idx not in folded for s in links)
        if deep:
            _deep(reader, links, folded, report)
    return report


def blobs_sha256(reader: Reader, bid: int) -> str:
    """The digest of a batch's stored blobs (:func:`analyzer.columns.blobs_digest`), each
    stream key rebuilt from the stream's stored columns ("" where a blob names an unknown
    stream, so that the digest cannot match)."""
    rows = reader.db.execute("SELECT method, stream_ids, n, first_ns, last_ns, data FROM blobs "
                             "WHERE bid = ?", (bid,)).fetchall()
    rows.sort(key=lambda r: str(r[0]))
    keys = _stream_keys(reader, {i for r in rows for i in _ids(r[1])})
    return blobs_digest((str(method), [keys.get(i, "") for i in _ids(ids)], int(n), int(first),
                         int(last), bytes(data))
                        for method, ids, n, first, last, data in rows).hex()


def _ids(text: str) -> list[int]:
    try:
        return ids_of(text)
    except RecordError:
        return [-1]


def _stream_keys(reader: Reader, ids: set[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    wanted = sorted(ids)
    for k in range(0, len(wanted), 500):
        chunk = wanted[k:k + 500]
        for row in reader.db.execute(f"SELECT id, {_S_COLS} FROM streams WHERE id IN "
                                     f"({', '.join('?' * len(chunk))})", chunk).fetchall():
            out[int(row[0])] = skey_of(row[1:])
    return out


def _check_raw(reader: Reader, links: Sequence[_Stored], report: Report) -> None:
    """Each batch's stored raw results against its digest, or covered by a prune link."""
    present = {int(r[0]) for r in reader.db.execute("SELECT DISTINCT bid FROM blobs")}
    cuts = [(s.idx, s.fields()) for s in links if s.kind == chain.PRUNE]
    for s in links:
        if s.kind != chain.BATCH:
            continue
        report.batches += 1
        name = f"link #{s.idx} (batch {s.probe_id}/{s.batch_id})"
        if s.idx in present:
            report.raw_checked += 1
            if blobs_sha256(reader, s.idx) != s.blobs_sha256:
                report.add(f"{name}: the stored raw results do not match the batch's digest "
                           "(a result, blob, stream or span was edited)")
        elif int(s.n or 0) and not any(
                p > s.idx and int(f.get("through", 0)) >= s.idx
                and int(f.get("raw_before_ns", 0)) > int(s.last_ns or 0) for p, f in cuts):
            report.add(f"{name}: the raw results are gone but no prune link covers them "
                       "(deleted outside retention)")
        else:
            report.raw_pruned += int(s.n or 0) > 0


def _last_state(links: Sequence[_Stored]) -> dict[str, str]:
    for s in reversed(links):
        if s.kind in chain.STATE_KINDS:
            return dict(s.fields().get("state", {}))
    return {}


def _rows(reader: Reader, table: str) -> Iterator[Sequence[Any]]:
    cur = reader.db.execute(f"SELECT {', '.join(STORED_ROLLUP_COLUMNS)} FROM {table}")
    while chunk := cur.fetchmany(_CHUNK):
        yield from chunk


def _check_tables(reader: Reader, committed: dict[str, str], report: Report) -> None:
    """Every row against its digest; every table's LtHash against the committed state."""
    for table in EVIDENCE_TABLES:
        state, n = LtHash(), 0
        digests: list[bytes] = []
        for row in _rows(reader, table):
            digest = row_digest(table, row[:_WIDTH])
            if digest != bytes(row[_WIDTH]):
                report.add(f"{table} row {key_text(row)}: the stored figures do not match "
                           "the row's digest (edited)")
            digests.append(digest)
            n += 1
            if len(digests) >= _CHUNK:
                state.add(table, digests)
                digests = []
        state.add(table, digests)
        report.rows_checked[table] = n
        if state.hexdigest() != committed.get(table, LtHash().hexdigest()):
            report.add(f"{table}: its rows are not the rows the chain's last fold, prune or "
                       "load link committed to (a row was added, removed, or edited with a "
                       "recomputed digest)")


def _check_folds(links: Sequence[_Stored], report: Report) -> set[int]:
    """Every fold link names earlier batches not folded before, and its watermark is true:
    every batch at or below it folded. Returns the folded batches."""
    batches: list[int] = []  # batch indices in chain order
    known: set[int] = set()
    folded: set[int] = set()
    low = 0  # batches[:low] are all folded
    for s in links:
        if s.kind == chain.BATCH:
            batches.append(s.idx)
            known.add(s.idx)
        if s.kind != chain.FOLD:
            continue
        fields = s.fields()
        try:
            named = ids_of_ranges(fields.get("batches"), below=s.idx)
            through = int(fields["through"])
        except (KeyError, TypeError, ValueError) as exc:
            report.add(f"link #{s.idx} (fold): its detail does not say which batches it "
                       f"folded ({exc})")
            continue
        for bid in named:
            if bid not in known:
                report.add(f"link #{s.idx} (fold): names link #{bid}, which is not an earlier "
                           "batch")
            elif bid in folded:
                report.add(f"link #{s.idx} (fold): folds batch link #{bid} a second time")
            folded.add(bid)
        while low < len(batches) and batches[low] in folded:
            low += 1
        true = batches[low] - 1 if low < len(batches) else s.idx - 1
        if through != true:
            report.add(f"link #{s.idx} (fold): claims every batch through #{through} folded, "
                       f"but the batches are folded through #{true}")
    return folded


def _deep(reader: Reader, links: Sequence[_Stored], folded: set[int], report: Report) -> None:
    """Rebuild the rollups of the folded batches from their raw results and compare."""
    cut_ns = max((int(s.fields().get("raw_before_ns", 0)) for s in links
                  if s.kind == chain.PRUNE), default=0)
    cut_raw = -(-cut_ns // 60_000_000_000)  # the first minute wholly after the cut
    cuts = {table: max((int(s.fields().get("minute_before", 0)) for s in links
                        if s.kind == chain.PRUNE and s.fields().get("table") == table),
                       default=0) for table in EVIDENCE_TABLES}
    batches = [reader.batch_tables(s.idx, chain.thresholds_of(s.thresholds or ""))
               for s in links if s.kind == chain.BATCH and s.idx in folded and s.n]
    rebuilt = ({c.table: {key_of(r): r for r in c.written} for c in plan(
        batches, lambda _t, _k: [], check=None)} if batches else {})
    compared = 0
    for table, size in TIERS.values():
        low = max(-(-cut_raw // size) * size, cuts[table])  # units retention kept whole
        want = {k: r for k, r in rebuilt.get(table, {}).items() if k[3] >= low}
        for row in _rows(reader, table):
            key = key_of(row)
            if key[3] < low:
                continue
            compared += 1
            mine = want.pop(key, None)
            if mine is None:
                report.add(f"{table} row {key_text(row)}: no stored raw result backs it")
            elif tuple(mine[:_WIDTH]) != _plain(row[:_WIDTH]):
                report.add(f"{table} row {key_text(row)}: differs from the rollup rebuilt "
                           "from the stored raw results")
        for row in want.values():
            report.add(f"{table} row {key_text(row)}: rebuilt from the raw results but "
                       "missing from the store")
    report.deep_rows = compared


def _plain(row: Sequence[Any]) -> Row:
    return tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
