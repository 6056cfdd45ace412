"""The JSON document of an analysis: one object per verdict, plus provenance.

Byte-reproducible: sorted keys, floats through :func:`num` (6 significant digits), no "now"
timestamps, times in ISO 8601 UTC. Delay values are in ms, ratios dimensionless.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from analyzer.baselines import TimeWindow
from analyzer.evaluate import Evaluation, Row
from analyzer.methods import METHODS
from analyzer.stats.compare import MIN_DELAY_SAMPLES, MIN_LOSS_SAMPLES, MIN_UNITS, STAT_MAP
from analyzer.store.base import ReadStore
from inventory.schema import Inventory

SCHEMA = 1
PERCENTILE_METHOD = "RFC 2330 §11.3 inverted CDF (conditional on arrival); median RFC 7679 §5.2"


def num(x: float | None) -> float | str | None:
    """A float for JSON: 6 significant digits, ``"inf"`` for infinity, None for NaN/None."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(f"{x:.6g}")


def _scale(row: Row) -> float:
    """Divide a level by this for its unit: ns -> ms for delays, 1 for loss ratios."""
    return 1.0 if STAT_MAP.get(row.statistic, ("", ""))[1] == "loss_ratio" else 1e6


def _value(x: float | None, scale: float) -> float | str | None:
    return None if x is None else num(x / scale)


def _clean(x: Any, scale: float) -> Any:
    """JSON-safe copy of a details mapping; ``value`` entries are levels (scaled to ms)."""
    if isinstance(x, dict):
        return {k: (_value(v, scale) if k == "value" and isinstance(v, float)
                    else _clean(v, scale)) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v, scale) for v in x]
    if isinstance(x, float):
        return num(x)
    return x


def row_to_dict(row: Row) -> dict[str, Any]:
    """One verdict object (the fields of issue 5 plus the auditor's row of notes §7)."""
    c, s = row.result, _scale(row)
    out: dict[str, Any] = {
        "target": row.target, "scope": row.scope, "per": row.per, "type_p": row.type_p,
        "statistic": row.statistic, "comparison": row.comparison,
        "unit": "ratio" if s == 1.0 else "ms",
        "distribution": None if s == 1.0 else "conditional",
        "baseline": {"n": c.baseline_n, "value": _value(c.baseline_value, s),
                     "source": row.baseline_source},
        "current": {"n": c.current_n, "value": _value(c.current_value, s)},
        "verdict": row.decision.verdict.value, "reason": row.decision.reason,
        "method": _method(c.method), "more_samples": c.more_samples,
        "p": {"pass": num(row.decision.p_pass), "fail": num(row.decision.p_fail),
              "holm_pass": num(row.p_adj_pass), "holm_fail": num(row.p_adj_fail)},
        "details": _clean(c.details, s),
    }
    iv = c.interval
    if c.kind == "level":
        out["threshold"] = _value(c.threshold, s)
        out["interval"] = None if iv is None else {
            "point": _value(iv.point, s), "low": _value(iv.low, s), "high": _value(iv.high, s),
            "clock_error": _value(c.clock_error, s)}
    else:
        out["threshold"] = num(c.threshold)
        out["ratio"] = None if iv is None else {
            "point": num(iv.point), "low": num(iv.low), "high": num(iv.high)}
    if c.bootstrap is not None:
        b = c.bootstrap
        out["bootstrap"] = {"block_minutes": b.block_units * b.unit_minutes, "blocks": b.blocks,
                            "replicates": b.replicates, "seed": b.seed, "method": b.method}
    return out


def _method(method_id: str) -> dict[str, str] | None:
    """The method that produced a row: its id, names and citation (:mod:`analyzer.methods`)."""
    if not method_id:
        return None
    m = METHODS[method_id]
    return {"id": m.id, "en": m.en, "zh": m.zh, "citation": m.citation}


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def provenance(store: ReadStore, inventory_path: str | Path, inv: Inventory, ev: Evaluation,
               version: str, baseline_store: ReadStore | None = None) -> dict[str, Any]:
    """Software version, inventory hash, the store's chain head (and the baseline store's,
    when the baseline was read from another store), parameters and seed, and each evaluated
    target's name and source document as the inventory gives them."""
    head = store.chain_head()
    p = ev.params
    extra: dict[str, Any] = {}
    if baseline_store is not None:
        base = baseline_store.chain_head()
        extra["baseline_store_chain_head"] = {"length": base.length, "head": base.head}
    return {**extra,
        "software": f"ixmeter {version}",
        "inventory": {"file": Path(inventory_path).name, "sha256": sha256_file(inventory_path)},
        "targets": target_sources(inv, {r.target for r in ev.rows}),
        "store_chain_head": {"length": head.length, "head": head.head},
        "parameters": {
            "current": p.current.iso(), "baseline": _iso(p.baseline), "seed": p.seed,
            "replicates": p.replicates, "unit_minutes": p.unit_minutes, "confidence": 0.95,
            "one_sided_alpha": 0.025, "percentiles": PERCENTILE_METHOD,
            "multiplicity": "Holm step-down over per-pair lists",
            "minimum_samples": {"delay": MIN_DELAY_SAMPLES, "loss": MIN_LOSS_SAMPLES,
                                "time_units": MIN_UNITS},
        },
    }


def target_sources(inv: Inventory, ids: set[str]) -> dict[str, Any]:
    """Target id -> its name (zh, en) and source document (title zh/en, issuer, year,
    reference), from the inventory (the one the evaluation read: loaded once)."""
    out: dict[str, Any] = {}
    for t in inv.policy_targets:
        if t.id in ids:
            d = t.document
            out[t.id] = {"name": {"zh": t.name.zh, "en": t.name.en},
                         "method": t.method.value if t.method else None,
                         "document": {"title": {"zh": d.title.zh, "en": d.title.en},
                                      "issuer": d.issuer, "year": d.year,
                                      "reference": d.reference}}
    return out


def target_verdict(verdicts: list[str]) -> str:
    """One verdict for a target from its groups' verdicts (methods ``target-summary``): FAIL if
    any group fails, PASS if every group passes, NOT EVALUABLE if none could be judged,
    INCONCLUSIVE otherwise."""
    if "FAIL" in verdicts:
        return "FAIL"
    if verdicts and all(v == "PASS" for v in verdicts):
        return "PASS"
    if all(v == "NOT EVALUABLE" for v in verdicts):
        return "NOT EVALUABLE"
    return "INCONCLUSIVE"


def target_summaries(rows: list[dict[str, Any]], sources: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per target, first in every report: its verdict and the count per verdict."""
    by: dict[str, list[str]] = {}
    for r in rows:
        by.setdefault(r["target"], []).append(r["verdict"])
    out = []
    for target in sorted(by):
        counts = {v: by[target].count(v) for v in sorted(set(by[target]))}
        src = sources.get(target, {})
        out.append({"target": target, "verdict": target_verdict(by[target]), "groups": counts,
                    "name": src.get("name"), "document": src.get("document")})
    return out


def _iso(w: TimeWindow | None) -> str | None:
    return None if w is None else w.iso()


def document(ev: Evaluation, prov: dict[str, Any]) -> dict[str, Any]:
    """The analysis as one JSON document: a line per target, then every verdict row."""
    rows = [row_to_dict(r) for r in ev.rows]
    return {"schema": SCHEMA, "provenance": prov,
            "targets": target_summaries(rows, prov.get("targets", {})),
            "verdicts": rows, "exclusions": ev.exclusions, "notes": ev.notes}


def dumps(doc: dict[str, Any]) -> str:
    """Canonical text: sorted keys, 2-space indent, UTF-8 kept, trailing newline."""
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
