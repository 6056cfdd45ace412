"""Pure codecs of the store's stream rows and of a blob's list of streams.

A stream is what stays constant over many results (probe, method, path ends, addresses, Type-P
per RFC 2330 §13, session: :data:`analyzer.columns.STREAM_FIELDS`); its key ``skey`` is
canonical JSON of the 14 identity columns (:func:`skey_of`), part of every raw-results digest
(:func:`analyzer.columns.blobs_digest`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ixmeter.core.errors import RecordError

STREAM_COLUMNS = ("skey", "probe_id", "method", "src_site", "src_carrier", "dst_site",
                  "dst_carrier", "src_addr", "dst_addr", "protocol", "ip_version", "size",
                  "dscp", "dst_port", "session", "path_id", "type_p")

IDENT_COLUMNS = STREAM_COLUMNS[1:15]  # a stream's identity, in analyzer.columns.STREAM_FIELDS order
_CANONICAL_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def skey_of(ident: Sequence[Any]) -> str:
    """The stream key: canonical JSON of the 14 stream identity columns."""
    return _CANONICAL_JSON(list(ident))


def ids_text(ids: Sequence[int]) -> str:
    """``blobs.stream_ids``: the ids in stored order, decimal, comma-separated."""
    return ",".join(map(str, ids))


def ids_of(text: str) -> list[int]:
    """Inverse of :func:`ids_text`; raises :class:`RecordError` for anything else."""
    try:
        return [int(i) for i in text.split(",")]
    except ValueError:
        raise RecordError(f"blobs.stream_ids: {text[:40]!r} is not a list of ids") from None
