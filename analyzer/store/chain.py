"""The hash chain over accepted batches: tamper evidence for the store (pure, no I/O).

Each accepted batch extends the chain with
``head_i = sha256(head_{i-1} || sha256(canonical body) || probe_id || 0x0a || batch_id || 0x0a
|| received_at_ns as decimal)`` where heads and digests are the raw 32 bytes and ``head_0`` is 32
zero bytes. A report quotes the head (and length); ``ixmeter verify`` recomputes every link and
every body digest still backed by raw results, and names the first link that does not match.
Any edit, deletion or reordering of an accepted batch changes every later head.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS = "00" * 32


def link(prev_head: str, body_sha256: str, probe_id: str, batch_id: str,
         received_at_ns: int) -> str:
    """The next head (hex) after ``prev_head`` for one accepted batch."""
    h = hashlib.sha256(bytes.fromhex(prev_head))
    h.update(bytes.fromhex(body_sha256))
    h.update(f"{probe_id}\n{batch_id}\n{received_at_ns}".encode())
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class StoredLink:
    """One batch row as stored, plus the body digest recomputed from its rows (None when the
    raw results were pruned by retention, so only the link arithmetic can be checked)."""

    index: int
    probe_id: str
    batch_id: str
    received_at_ns: int
    body_sha256: str
    prev_head: str
    head: str
    recomputed_body: str | None


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Outcome of a full chain check; ``broken`` names the first bad link (None: intact)."""

    length: int
    head: str
    bodies_checked: int
    broken: str | None = None
    found_at: int | None = None  # chain index whose head is the one looked for

    @property
    def ok(self) -> bool:
        return self.broken is None


def check(links: Iterable[StoredLink], find_head: str | None = None) -> ChainReport:
    """Walk the chain from genesis; stop at the first link that does not match. With
    ``find_head`` (a head quoted in an earlier report) also say where it is in the chain."""
    prev, n, bodies, found = GENESIS, 0, 0, None
    for s in links:
        where = f"batch #{s.index} ({s.probe_id}/{s.batch_id})"
        problem = _problem(s, prev, n + 1)
        if problem is not None:
            return ChainReport(n, prev, bodies, f"{where}: {problem}", found)
        bodies += s.recomputed_body is not None
        prev, n = s.head, n + 1
        if s.head == find_head:
            found = n
    return ChainReport(n, prev, bodies, None, found)


def _problem(s: StoredLink, prev: str, expected_index: int) -> str | None:
    if s.index != expected_index:
        return f"expected chain index {expected_index} (a batch is missing or reordered)"
    if s.prev_head != prev:
        return "prev_head does not match the previous head"
    if s.recomputed_body is not None and s.recomputed_body != s.body_sha256:
        return "stored results do not match the batch digest (a stored result was edited)"
    if link(prev, s.body_sha256, s.probe_id, s.batch_id, s.received_at_ns) != s.head:
        return "head does not match sha256(prev || body || probe || batch || received_at)"
    return None
