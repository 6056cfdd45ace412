"""What a probe needs from the inventory: its own entry, its specs and its targets, signed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inventory.schema import Inventory
from inventory.topology import Topology
from ixmeter.core import plan as plan_format


def probe_plan(inv: Inventory, probe_id: str) -> dict[str, Any] | None:
    """The probe, the specs that select it as a source and each spec's destinations, as JSON;
    None if the inventory has no such probe."""
    probe = next((p for p in inv.probes if p.id == probe_id), None)
    if probe is None:
        return None
    topo = Topology(inv)
    specs, targets = [], []
    for spec in inv.specs:
        dsts = [dst for src, dst in topo.spec_paths(spec) if src.id == probe_id]
        if dsts:
            specs.append(spec.model_dump(mode="json", by_alias=True))
            targets += [{"spec": spec.id, "target": d.model_dump(mode="json", by_alias=True)}
                        for d in dsts]
    return {"inventory": inv.name, "probe": probe.model_dump(mode="json", by_alias=True),
            "specs": specs, "targets": targets}


def signed_plan(inv: Inventory, probe_id: str, keys: Sequence[bytes],
                issued_at: float) -> plan_format.SignedPlan | None:
    """:func:`probe_plan` as served: signed with each of the probe's ``keys`` (newest first,
    :mod:`ixmeter.core.plan`); None if the inventory has no such probe."""
    plan = probe_plan(inv, probe_id)
    return None if plan is None else plan_format.encode(probe_id, plan, keys, issued_at)


def thresholds_ns(inv: Inventory | None,
                  defaults: tuple[int, ...] = (1_000_000, 3_000_000)) -> tuple[int, ...]:
    """Rollup thresholds: the defaults plus every absolute ``below_ms`` policy target."""
    extra = set() if inv is None else {
        round(t.comparison.threshold * 1_000_000) for t in inv.policy_targets
        if t.comparison.kind == "absolute" and t.comparison.threshold_unit == "ms"}
    return tuple(sorted(set(defaults) | extra))
