"""Published chain heads: what an auditor holds the store to.

A head export is a small JSON document: the store it came from, the chain's length and head at
a moment, that moment (UTC), and optionally an Ed25519 signature (RFC 8032) by the collector
operator's signing key over ``ixmeter-head`` NUL length NUL head NUL time, with the public key.
Whoever publishes it (on a web page, in a report, to the authority by mail) pins everything the
store held up to that head: ``ixmeter verify --head-file`` fails unless the intact chain
contains it, and with ``--public-key`` unless the signature is the key holder's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ixmeter.core.errors import IxmeterError


class HeadError(IxmeterError):
    """A head export that cannot be read or whose signature does not verify."""


@dataclass(frozen=True, slots=True)
class PublishedHead:
    store: str
    length: int
    head: str
    at: str  # ISO 8601 UTC
    signature: str | None = None  # hex
    public_key: str | None = None  # hex, raw 32 bytes

    def message(self) -> bytes:
        return f"ixmeter-head\0{self.length}\0{self.head}\0{self.at}".encode()

    def to_json(self) -> str:
        return json.dumps({"store": self.store, "length": self.length, "head": self.head,
                           "at": self.at, "signature": self.signature,
                           "public_key": self.public_key}, sort_keys=True, indent=1) + "\n"


def new_signing_key(path: str | Path) -> str:
    """Write a new Ed25519 private key (PEM, mode 0600) to ``path``; return its public key
    (hex), which the operator publishes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return _public_hex(key)


def _public_hex(key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return str(key.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw).hex())


def sign(head: PublishedHead, key_path: str | Path) -> PublishedHead:
    """``head`` signed with the Ed25519 private key at ``key_path``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise HeadError(f"cannot read the signing key {key_path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise HeadError(f"{key_path} is not an Ed25519 private key")
    return PublishedHead(head.store, head.length, head.head, head.at,
                         key.sign(head.message()).hex(), _public_hex(key))


def load(path: str | Path) -> PublishedHead:
    try:
        obj = json.loads(Path(path).read_text())
        return PublishedHead(str(obj["store"]), int(obj["length"]), str(obj["head"]),
                             str(obj["at"]), obj.get("signature"), obj.get("public_key"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HeadError(f"cannot read the head export {path}: {exc}") from None


def check_signature(head: PublishedHead, public_key: str) -> None:
    """Raise :class:`HeadError` unless ``head`` carries a valid signature by the key whose
    raw public key is ``public_key`` (hex, or a file holding it)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    text = Path(public_key).read_text().strip() if Path(public_key).is_file() else public_key
    if head.signature is None:
        raise HeadError("the head export is not signed")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(text)).verify(
            bytes.fromhex(head.signature), head.message())
    except (ValueError, InvalidSignature):
        raise HeadError("the head export's signature is not the given key's (forged or "
                        "altered)") from None
