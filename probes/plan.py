"""The probe's plan from the collector: fetched signed, checked, cached on disk.

``GET /v1/probes/{id}/inventory`` (a signed request, ``ixmeter.core.wire.sign``) answers the plan
signed with each key the collector accepts for the probe (:mod:`ixmeter.core.plan`). A plan that
verifies with one of the probe's keys is written atomically to the cache file (mode 0600) and
used; when the collector cannot be reached the cached copy is used, after checking it again
with the probe's current keys; an older plan than the one in use is refused (a replayed
answer must not roll the probe's targets back). The plan also tells the key rotation state:
:func:`rotation_note` says when the collector already holds a newer key than the probe's.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from ixmeter.core import plan as plan_format
from ixmeter.core.wire import sign

log = logging.getLogger("ixmeter.probe.plan")
FETCH_TIMEOUT_S = 10.0


def plan_path(probe_id: str) -> str:
    return f"/v1/probes/{probe_id}/inventory"


async def fetch(client: httpx.AsyncClient, url: str, probe_id: str, key: bytes
                ) -> plan_format.SignedPlan:
    """The signed plan as the collector serves it; ``httpx.HTTPError`` when unreachable,
    :class:`~ixmeter.core.plan.PlanError` for an answer that is not a plan."""
    path = plan_path(probe_id)
    headers = sign(key, probe_id, "GET", path, b"", time.time())
    response = await client.get(url.rstrip("/") + path, headers=headers,
                                timeout=FETCH_TIMEOUT_S)
    if response.status_code != 200:
        raise plan_format.PlanError(f"collector answered HTTP {response.status_code} to GET "
                                    f"{path}: {response.text[:300]}")
    return plan_format.SignedPlan(response.content, response.headers.get(plan_format.HEADER, ""))


def save(path: Path, signed: plan_format.SignedPlan) -> None:
    """Write the signed plan atomically, readable by the owner only."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"signature": signed.signature, "body": signed.body.decode()}, f)
    os.replace(tmp, path)


def load(path: Path, keys: Sequence[bytes]) -> dict[str, Any] | None:
    """The cached plan object if there is one that verifies with ``keys``; None if there is
    no cache; :class:`~ixmeter.core.plan.PlanError` for a cache that does not verify."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise plan_format.PlanError(f"plan cache {path} is unreadable: {exc}") from None
    signed = plan_format.SignedPlan(str(data.get("body", "")).encode(),
                                    str(data.get("signature", "")))
    return plan_format.verify(signed, keys)


def rotation_note(served: dict[str, Any], key: bytes) -> str | None:
    """A warning when the probe's key is not the collector's newest (or not accepted)."""
    fps = [str(f) for f in served.get("keys", [])]
    mine = plan_format.fingerprint(key)
    if fps and fps[0] != mine:
        state = "still accepted" if mine in fps else "no longer accepted"
        return (f"the collector holds a newer key for this probe ({fps[0]}); this probe's "
                f"key ({mine}) is {state}: install the new key in key_file and send SIGHUP")
    return None
