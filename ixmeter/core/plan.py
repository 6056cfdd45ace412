"""The probe's measurement plan as the collector serves it, signed; shared by both ends.

``GET /v1/probes/{id}/inventory`` answers the canonical JSON (sorted keys, no spaces, UTF-8) of
``{"probe_id", "issued_at", "keys", "plan"}``: ``plan`` is the probe's entry, its specs and each
spec's destinations (``analyzer.collector.inventory.probe_plan``), ``keys`` the fingerprints of
the keys the collector accepts for the probe, newest first (its rotation state), ``issued_at``
Unix seconds. The header :data:`HEADER` carries one HMAC-SHA256 (RFC 2104) of
``"ixmeter plan v1\\n" + body`` per accepted key, ``fingerprint:hex`` comma-separated in the same
order, so a probe holding any accepted key can check the plan it fetched and, later, the copy it
cached on disk. A key's fingerprint is the first 8 octets of its SHA-256 in hex, never the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ixmeter.core.errors import IxmeterError

HEADER = "X-Ixmeter-Plan-Signature"
_CONTEXT = b"ixmeter plan v1\n"


class PlanError(IxmeterError):
    """A plan whose signature does not verify with the probe's keys, or that is not a plan."""


def fingerprint(key: bytes) -> str:
    """A key's public name: the first 8 octets of its SHA-256, in hex."""
    return hashlib.sha256(key).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SignedPlan:
    """A plan body and its signature header, as served and as cached."""

    body: bytes
    signature: str

    def decoded(self) -> dict[str, Any]:
        """The body's object (after :func:`verify`)."""
        obj = json.loads(self.body)
        if not isinstance(obj, dict) or not isinstance(obj.get("plan"), dict):
            raise PlanError("the plan body is not a plan object")
        return obj


def encode(probe_id: str, plan: dict[str, Any], keys: Sequence[bytes],
           issued_at: float) -> SignedPlan:
    """The body and its signatures with every key in ``keys`` (newest first)."""
    body = json.dumps({"probe_id": probe_id, "issued_at": round(issued_at, 3),
                       "keys": [fingerprint(k) for k in keys], "plan": plan},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return SignedPlan(body, ",".join(f"{fingerprint(k)}:{_mac(k, body)}" for k in keys))


def verify(signed: SignedPlan, keys: Sequence[bytes]) -> dict[str, Any]:
    """The plan object if one of ``keys`` signed it; :class:`PlanError` otherwise."""
    given = dict(part.split(":", 1) for part in signed.signature.split(",") if ":" in part)
    for key in keys:
        mac = given.get(fingerprint(key))
        if mac is not None and hmac.compare_digest(mac, _mac(key, signed.body)):
            return signed.decoded()
    raise PlanError("the plan is not signed with any key this probe holds",
                    hint="check the probe's key_file against the collector's keys file")


def _mac(key: bytes, body: bytes) -> str:
    return hmac.new(key, _CONTEXT + body, hashlib.sha256).hexdigest()
