"""RIPE Atlas ping results (JSON, atlas.ripe.net measurement-result-format) -> results.

A document is a list of result objects (or one object, or JSON lines) with ``type: "ping"``,
``af``, ``dst_addr``, ``prb_id``, ``timestamp`` (Unix s), ``size`` (payload octets; the ICMP
message is 8 more) and ``result``: a list of ``{"rtt": ms}``, ``{"x": "*"}`` (no reply: lost),
``{"error": text}`` (not a sample) or ``{"rtt": ms, "dup": 1}`` (a duplicate of the previous
reply). Packet i is placed at ``timestamp`` + i x ``--interval``. The source end comes from
``--probe-map PRB_ID=SITE/CARRIER`` (or ``--src``), the destination from ``--map``/``--dst``.
"""

from __future__ import annotations

import json
from typing import Any

from analyzer.importers.common import End, Mapping, Problem, check_time, ip_version, make_result
from ixmeter.record import Method, Result, TypeP


def _documents(text: str) -> list[tuple[int, Any]]:
    stripped = text.strip()
    if stripped.startswith("["):
        return [(1, d) for d in json.loads(stripped)]
    if stripped.startswith("{") and "\n" not in stripped:
        return [(1, json.loads(stripped))]
    return [(i, json.loads(line)) for i, line in enumerate(text.splitlines(), start=1)
            if line.strip()]


def parse_atlas(text: str, name: str, m: Mapping) -> tuple[list[Result], list[Problem]]:
    """Atlas ping result objects -> results (line numbers for JSON lines; 1 for an array)."""
    try:
        docs = _documents(text)
    except json.JSONDecodeError as exc:
        return [], [Problem(name, exc.lineno, f"not JSON: {exc.msg}")]
    out: list[Result] = []
    problems: list[Problem] = []
    for index, (line, doc) in enumerate(docs):
        try:
            out.extend(_one(doc, m))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            problems.append(Problem(name, line, f"result [{index}]: {exc}"))
    return out, problems


def _one(doc: Any, m: Mapping) -> list[Result]:
    if not isinstance(doc, dict) or doc.get("type") != "ping":
        raise ValueError("not a ping result (type != 'ping')")
    addr, prb = str(doc["dst_addr"]), str(doc["prb_id"])
    src = m.by_probe.get(prb) or m.src
    dst = m.dst_for(addr)
    if src is None or dst is None:
        raise ValueError(f"no mapping for probe {prb} -> {addr}: give --probe-map and --map")
    af = int(doc.get("af", ip_version(addr)))
    type_p = TypeP("icmp", af, int(doc.get("size", 48)) + 8, m.dscp)
    start = check_time(round(float(doc["timestamp"]) * 1e9))
    out: list[Result] = []
    seq = 0
    for item in doc["result"]:
        if not isinstance(item, dict):
            raise ValueError(f"bad packet entry {item!r}")
        if item.get("dup") and out:
            prev = out[-1]
            out[-1] = make_result(**_kw(prev), dup=prev.dup + 1)
            continue
        rtt = round(float(item["rtt"]) * 1e6) if "rtt" in item else None
        error = str(item["error"]) if "error" in item else None
        out.append(make_result(probe_id=m.probe_id or f"atlas-{prb}", src=src,
                               dst=End(dst.site, dst.carrier, addr), method=Method.ICMP,
                               type_p=type_p, seq=seq, sent_at_ns=start + seq * m.interval_ns,
                               rtt_ns=rtt, tmax_ns=m.tmax_ns, error=error))
        seq += 1
    return out


def _kw(r: Result) -> dict[str, Any]:
    return {"probe_id": r.probe_id, "src": End(r.src_site, r.src_carrier, r.src_addr),
            "dst": End(r.dst_site, r.dst_carrier, r.dst_addr), "method": r.method,
            "type_p": r.type_p, "seq": r.seq, "sent_at_ns": r.sent_at_ns, "rtt_ns": r.rtt_ns,
            "tmax_ns": r.tmax_ns}
