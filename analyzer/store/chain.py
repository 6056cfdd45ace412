"""The hash chain over everything the store's figures are computed from (pure, no I/O).

Every change of the evidence is a *link*, appended in one transaction with the change itself:

- a **batch** link for each accepted batch: its raw results (the digest of its stored blobs),
  its size, send-time span and the delay thresholds its rollups count;
- a **fold** link each time batches' rollups are folded into the rollup tables, naming the
  batches it folded (:mod:`analyzer.store.foldset`: ranges and a watermark);
- a **prune** link each time retention deletes raw results, or minute or hour rollups;
- a **load** link when rollup rows computed elsewhere are loaded as they are (a synthetic
  history for a benchmark or a demo, marked as such in the detail): no raw result backs them;
- a **group** link each time target-group rows are rebuilt from the path tiers
  (:mod:`analyzer.groups`); a fold or load that changes a path tier unit deletes that unit's
  group rows in the same transaction, so a group row never outlives the rows it merges.

A fold, prune, load or group link's *detail* is canonical JSON that names what it did and
commits, for each evidence table, to the SHA-256 of the table's LtHash after it
(:mod:`analyzer.store.evidence`), so the chain commits to every row a verdict can read, and a
table's rows can be checked against the last such link even after the raw results they came
from were pruned.

``head_i = sha256(head_{i-1} || body_i || kind "\\n" probe_id "\\n" batch_id "\\n" at_ns)`` with
heads and bodies as raw 32 bytes, ``head_0`` 32 zero bytes, ``at_ns`` in decimal and
``probe_id``/``batch_id`` empty for links that are not batches. A batch link's body is
:func:`batch_body` of its columns; any other link's body is the SHA-256 of its detail. Any
edit, deletion or reordering of a link changes every later head; a published head therefore
pins everything before it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS = "00" * 32
BATCH, FOLD, PRUNE, LOAD, GROUP = "batch", "fold", "prune", "load", "group"
KINDS = (BATCH, FOLD, PRUNE, LOAD, GROUP)
STATE_KINDS = (FOLD, PRUNE, LOAD, GROUP)  # links that commit to the evidence tables' states


def canonical(obj: Any) -> str:
    """Canonical JSON: keys sorted, no spaces, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def head_of(prev_head: str, body_sha256: str, kind: str, probe_id: str, batch_id: str,
            at_ns: int) -> str:
    """The head (hex) after ``prev_head`` for one link."""
    h = hashlib.sha256(bytes.fromhex(prev_head))
    h.update(bytes.fromhex(body_sha256))
    h.update(f"{kind}\n{probe_id}\n{batch_id}\n{at_ns}".encode())
    return h.hexdigest()


def batch_body(n: int, first_ns: int, last_ns: int, thresholds: str, blobs_sha256: str) -> str:
    """A batch link's body: SHA-256 of canonical JSON of its stored columns."""
    return hashlib.sha256(canonical({
        "kind": BATCH, "n": n, "first_ns": first_ns, "last_ns": last_ns,
        "thresholds": thresholds, "blobs": blobs_sha256}).encode()).hexdigest()


def detail_body(detail: str) -> str:
    """A fold, prune or load link's body: SHA-256 of its detail."""
    return hashlib.sha256(detail.encode()).hexdigest()


def detail_of(kind: str, fields: Mapping[str, Any], state: Mapping[str, str]) -> str:
    """The canonical detail of a fold, prune or load link: what it did and each evidence table's
    state digest after it."""
    return canonical({"kind": kind, **fields, "state": dict(state)})


@dataclass(frozen=True, slots=True)
class Link:
    """One stored link. ``body`` is the body recomputed from the stored columns or detail
    (what the head must be built from); ``body_sha256`` the one stored."""

    index: int
    kind: str
    at_ns: int
    probe_id: str
    batch_id: str
    body: str
    body_sha256: str
    prev_head: str
    head: str

    @property
    def name(self) -> str:
        if self.kind == BATCH:
            return f"link #{self.index} (batch {self.probe_id}/{self.batch_id})"
        return f"link #{self.index} ({self.kind})"


@dataclass(frozen=True, slots=True)
class Walk:
    """The outcome of walking the chain's arithmetic: length and head of the intact prefix,
    the first break (None: intact) and where a looked-for head was found."""

    length: int
    head: str
    broken: str | None = None
    found_at: int | None = None


def walk(links: Iterable[Link], find_head: str | None = None) -> Walk:
    """Walk the links from genesis, stopping at the first whose index, previous head, body or
    head does not match."""
    prev, n, found = GENESIS, 0, None
    for s in links:
        problem = _problem(s, prev, n + 1)
        if problem is not None:
            return Walk(n, prev, f"{s.name}: {problem}", found)
        prev, n = s.head, n + 1
        if s.head == find_head:
            found = n
    return Walk(n, prev, None, found)


def _problem(s: Link, prev: str, expected_index: int) -> str | None:
    if s.index != expected_index:
        return f"expected chain index {expected_index} (a link is missing or reordered)"
    if s.kind not in KINDS:
        return f"unknown link kind {s.kind!r}"
    if s.prev_head != prev:
        return "prev_head does not match the previous head"
    if s.body != s.body_sha256:
        what = "batch's columns" if s.kind == BATCH else "detail"
        return f"the stored {what} do not match the link's body digest (edited)"
    if head_of(prev, s.body, s.kind, s.probe_id, s.batch_id, s.at_ns) != s.head:
        return "head does not match sha256(prev || body || kind, probe, batch, at)"
    return None


def thresholds_text(thresholds: Sequence[int]) -> str:
    """``links.thresholds``: the delay thresholds, ns, comma-separated."""
    return ",".join(map(str, thresholds))


def thresholds_of(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(",") if t)
