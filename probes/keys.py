"""The probe's one key-file format, for upload keys and STAMP keys alike.

A key file holds either one hex key (at least 16 bytes, e.g. ``ixmeter keys new`` output), or a
YAML/JSON mapping of an id to one hex key or a list of hex keys, newest first, as the
collector's keys file (``analyzer.collector.keys``) is written::

    cs-yungu-ct: 6f1c...                 # the probe's upload key, under its probe id
    cs-cmcc-cm: [9a0b..., 41de...]       # STAMP: a reflector's keys during a rotation

A sender signs with the newest key of its id; a receiver (the collector, a reflector) accepts
any listed, so keys rotate without downtime. The upload key is looked up under the probe id;
STAMP keys under the reflector's endpoint id (then its address): one key per reflector
(RFC 8762 §4.4 leaves the key's distribution to the operator). Files are re-read on every
reload (SIGHUP, configuration refresh), so a rotation needs no restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ixmeter.core.errors import IxmeterError
from ixmeter.core.wire import hex_key


class KeyFileError(IxmeterError):
    """A key file that cannot be read, or holds no usable key for the id asked."""


def read_keys(path: Path, key_id: str | None = None, *, what: str = "key file") -> list[bytes]:
    """The keys (newest first) in ``path`` for ``key_id``; a file of one hex key serves any
    id. Errors name the file, the id and what to do."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} {str(path)!r}: {exc.strerror}",
                           hint="write the hex key from 'ixmeter keys new --probe ID' there, "
                                "mode 0600") from None
    data = _mapping(text)
    if data is None:
        return [_hex(text, path, what, key_id)]
    value = data.get(key_id) if key_id is not None else None
    if value is None:
        raise KeyFileError(f"{what} {str(path)!r} has no key for {key_id!r}",
                           hint=f"add '{key_id}: HEXKEY' to it")
    items = value if isinstance(value, list) else [value]
    if not items:
        raise KeyFileError(f"{what} {str(path)!r}: empty key list for {key_id!r}")
    return [_hex(str(v), path, what, key_id) for v in items]


def read_key(path: Path, key_id: str | None = None, *, what: str = "key file") -> bytes:
    """The newest key of ``key_id`` in ``path`` (:func:`read_keys`)."""
    return read_keys(path, key_id, what=what)[0]


def ids_in(path: Path) -> set[str] | None:
    """The ids a mapping key file names; None for a file of one key (it serves any id)."""
    try:
        data = _mapping(path.read_text().strip())
    except OSError:
        return set()
    return None if data is None else set(data)


def _mapping(text: str) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return {str(k): v for k, v in data.items()} if isinstance(data, dict) else None


def _hex(text: str, path: Path, what: str, key_id: str | None) -> bytes:
    whose = f" for {key_id!r}" if key_id is not None else ""
    try:
        return hex_key(text)
    except ValueError as exc:
        raise KeyFileError(f"{what} {str(path)!r}: the key{whose} {exc}",
                           hint="generate one with 'ixmeter keys new --probe ID'") from None
