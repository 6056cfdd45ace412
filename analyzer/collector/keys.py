"""Per-probe HMAC-SHA256 keys (RFC 2104): the keys file, generation and rotation.

The keys file is YAML or JSON mapping a probe id to one hex key or a list of hex keys::

    csx-ct-1: 6f1c...        # one key
    csx-cm-1: [9a0b..., 41de...]   # during rotation: the new key first, the old one still valid

The collector accepts a request signed with any key listed for its probe, so a key is rotated
without downtime: ``ixmeter keys rotate`` adds a new key in front, the probe is given the new key,
and ``ixmeter keys rotate --retire`` (or editing the file) drops the old ones. Keys are 32 random
bytes (``secrets.token_bytes``), at least 16 bytes are required.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ixmeter.core.errors import IxmeterError
from ixmeter.core.wire import hex_key

KEY_BYTES = 32


class KeysError(IxmeterError):
    """A keys file that cannot be read or holds a malformed key."""


class KeyRing:
    """probe id -> accepted keys (newest first)."""

    def __init__(self, keys: Mapping[str, list[bytes]] | None = None) -> None:
        self._keys: dict[str, list[bytes]] = {p: list(k) for p, k in (keys or {}).items()}

    def keys_for(self, probe_id: str) -> list[bytes]:
        return list(self._keys.get(probe_id, ()))

    def probes(self) -> list[str]:
        return sorted(self._keys)

    def add(self, probe_id: str, key: bytes, *, retire_old: bool = False) -> None:
        """Put ``key`` first for ``probe_id``; drop the older keys if ``retire_old``."""
        old = [] if retire_old else [k for k in self._keys.get(probe_id, []) if k != key]
        self._keys[probe_id] = [key, *old]

    def to_mapping(self) -> dict[str, Any]:
        return {p: [k.hex() for k in ks] if len(ks) > 1 else ks[0].hex()
                for p, ks in sorted(self._keys.items()) if ks}


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def parse_keys(data: Any, source: str = "keys file") -> KeyRing:
    """Validate the decoded YAML/JSON mapping; errors name the probe and what is wrong."""
    if data is None:
        return KeyRing()
    if not isinstance(data, Mapping):
        raise KeysError(f"{source}: expected a mapping probe_id -> hex key")
    out: dict[str, list[bytes]] = {}
    for probe, value in data.items():
        items = value if isinstance(value, list) else [value]
        out[str(probe)] = [_key(source, str(probe), v) for v in items]
    return KeyRing(out)


def _key(source: str, probe: str, value: Any) -> bytes:
    try:
        return hex_key(str(value))
    except ValueError as exc:
        raise KeysError(f"{source}: key of probe {probe!r} {exc}",
                        hint="generate one with 'ixmeter keys new --probe ID'") from None


def load_keys(path: str | Path) -> KeyRing:
    """Read a YAML or JSON keys file (JSON is YAML); a missing file is an error."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise KeysError(f"cannot read keys file {str(p)!r}: {exc.strerror}",
                        hint="create one with 'ixmeter keys new --probe ID --out FILE'") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KeysError(f"{p}: not valid YAML/JSON ({exc})") from None
    return parse_keys(data, str(p))


def save_keys(ring: KeyRing, path: str | Path) -> None:
    """Write atomically, readable by the owner only (0600)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        if p.suffix == ".json":
            json.dump(ring.to_mapping(), f, indent=2)
        else:
            yaml.safe_dump(ring.to_mapping(), f, sort_keys=True)
    os.replace(tmp, p)
