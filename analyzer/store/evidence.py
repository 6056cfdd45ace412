"""Tamper evidence for stored rows: a digest per row and a homomorphic digest per table (pure).

Every row a figure is computed from (the minute, hour and day rollups) carries ``digest``, the
SHA-256 of its canonical encoding (:func:`row_digest`), so an edited value is named by table and
key. Each table's whole content is summarised by an LtHash (:class:`LtHash`), a *homomorphic*
multiset hash: the hash of a set of rows is the lane-wise sum, modulo 2**16, of one 1,024-lane
vector per row expanded from the row's digest with SHAKE-128, so a writer that replaces rows
updates it by subtracting the old rows' vectors and adding the new ones, without reading the
table (Bellare and Micciancio, "A New Paradigm for Collision-free Hashing: Incrementality at
Reduced Cost", EUROCRYPT 1997; the parameters n = 1,024 lanes of 16 bits, "LtHash16", are those
of Lewi, Kim, Maykov and Weis, "Securing Update Propagation with Homomorphic Hashing", IACR
ePrint 2019/227). Every operation that changes a table appends a link to the hash chain that
commits to the SHA-256 of each table's LtHash after it (:mod:`analyzer.store.chain`), and
``ixmeter verify`` recomputes the LtHash of every table from its rows.

The canonical row encoding, column by column in the table's column order: NULL as ``00``; an
integer as ``01`` and 8 bytes big-endian two's complement; a float as ``02`` and its IEEE 754
binary64 bytes big-endian; a string as ``03``, its UTF-8 length (4 bytes big-endian) and its
UTF-8 bytes; bytes as ``04``, their length (4 bytes big-endian) and themselves. The digest is
SHA-256 of ``ixmeter-row``, NUL, the table name, NUL and that encoding.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ixmeter.core.errors import IxmeterError

LANES = 1024  # LtHash16: 1,024 lanes of 16 bits, 2,048 bytes
_ELEMENT_BYTES = 2 * LANES
_CHUNK = 4096  # rows expanded per numpy sum
_INT = struct.Struct(">Bq").pack  # tag, value
_FLOAT = struct.Struct(">Bd").pack
_LEN = struct.Struct(">BI").pack  # tag, length


class EncodeError(ValueError):
    """A value of a type no stored row may hold."""


class EvidenceError(IxmeterError):
    """Stored evidence does not match its digest or the hash chain: the store was edited."""


def encode_row(row: Sequence[Any]) -> bytes:
    """The canonical encoding of a row (module docstring)."""
    out: list[bytes] = []
    put = out.append
    for value in row:
        kind = type(value)
        if kind is int:
            put(_INT(1, value))
        elif kind is float:
            put(_FLOAT(2, value))
        elif kind is str:
            data = value.encode()
            put(_LEN(3, len(data)))
            put(data)
        elif value is None:
            put(b"\x00")
        elif kind in (bytes, bytearray, memoryview):
            data = bytes(value)
            put(_LEN(4, len(data)))
            put(data)
        else:
            raise EncodeError(f"cannot encode a {kind.__name__} in a stored row")
    return b"".join(out)


def row_digest(table: str, row: Sequence[Any]) -> bytes:
    """SHA-256 of a row of ``table`` in canonical form (32 bytes)."""
    return hashlib.sha256(b"ixmeter-row\0" + table.encode() + b"\0" + encode_row(row)).digest()


def _element(table: str, digest: bytes) -> bytes:
    """A row's LtHash vector (2,048 bytes) from its table and digest."""
    return hashlib.shake_128(b"ixmeter-lthash\0" + table.encode() + b"\0" + digest
                             ).digest(_ELEMENT_BYTES)


class LtHash:
    """The LtHash16 of a multiset of rows of one table: 1,024 lanes summed modulo 2**16."""

    __slots__ = ("lanes",)

    def __init__(self, lanes: npt.NDArray[np.uint16] | None = None) -> None:
        self.lanes = np.zeros(LANES, np.uint16) if lanes is None else lanes.astype(np.uint16)

    @classmethod
    def from_bytes(cls, data: bytes) -> LtHash:
        if len(data) != _ELEMENT_BYTES:
            raise ValueError(f"an LtHash is {_ELEMENT_BYTES} bytes, not {len(data)}")
        return cls(np.frombuffer(data, "<u2").copy())

    def to_bytes(self) -> bytes:
        return self.lanes.astype("<u2").tobytes()

    def hexdigest(self) -> str:
        """SHA-256 of the state: what the hash chain commits to."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def add(self, table: str, digests: Iterable[bytes]) -> None:
        """Add rows (by their digests)."""
        self.lanes += _sum(table, digests)

    def remove(self, table: str, digests: Iterable[bytes]) -> None:
        """Remove rows added before (by their digests)."""
        self.lanes -= _sum(table, digests)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LtHash) and bool(np.array_equal(self.lanes, other.lanes))

    def __hash__(self) -> int:
        return hash(self.to_bytes())


def _sum(table: str, digests: Iterable[bytes]) -> npt.NDArray[np.uint16]:
    """The lane-wise sum modulo 2**16 of the rows' vectors, a chunk of rows at a time."""
    total = np.zeros(LANES, np.uint64)
    chunk: list[bytes] = []
    for digest in digests:
        chunk.append(_element(table, digest))
        if len(chunk) == _CHUNK:
            total += _chunk_sum(chunk)
            chunk = []
    if chunk:
        total += _chunk_sum(chunk)
    return (total & 0xFFFF).astype(np.uint16)


def _chunk_sum(elements: list[bytes]) -> npt.NDArray[np.uint64]:
    lanes = np.frombuffer(b"".join(elements), "<u2").reshape(len(elements), LANES)
    out: npt.NDArray[np.uint64] = lanes.sum(axis=0, dtype=np.uint64)
    return out
