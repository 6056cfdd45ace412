"""RIPE Atlas ping and traceroute results (JSON, the "Measurement Result Format" of RIPE Atlas)
-> results, each ping result checked against its own ``sent``/``rcvd``/``min``/``avg``/``max``.

A document is a JSON array of results, JSON lines, or one object. A problem names the line the
result starts on and its index (``result [3]``). Firmware rules (the ``fw`` field):

- ``fw`` 0 is an unknown format and ``fw`` 1 (before 4400) ping results hold only a summary (no
  per-packet RTT) and traceroutes only text: both are refused;
- ping before 4460 names the destination ``addr`` and the family ``pf`` and gives no usable
  packet size: ``--size`` must say it;
- ``size`` is the ICMP data: from 4570 without the 8-octet ICMP header, from 4460 to 4569 with
  it (RIPE Atlas changed it; ripe.atlas.sagan subtracts 8 below 4570). The Type-P size
  (RFC 2330 §13) is the whole ICMP message, so: ``size + 8`` from 4570, ``size`` before.
  ``--size``, where given, must agree with what the result says.

Ping packets: ``{"rtt": ms}`` answered (``ttl``: the reply's TTL, else the result's ``ttl`` of
the first reply; ``src_addr``/``srcaddr``: the probe's source address if it changed, else the
result's ``src_addr``), ``{"x": "*"}`` lost (RFC 7680 §2.4), ``{"error": text}`` an error record
(not a sample), ``{"dup": 1, ...}`` a duplicate reply: counted on the latest answered packet
before it (RFC 7679 §3.4: the first copy counts; a duplicate after a timeout belongs to no lost
packet). Packet i is placed at ``timestamp`` + i x ``--interval``.

Traceroute: each hop's k-th reply forms trace k (one Paris flow, ``paris_id``), stored as a
``traceroute`` record with one hop per TTL, exactly as the probe's own traces, so the report maps
each hop to a carrier or the exchange point by the inventory's prefixes.

The source end comes from ``--probe-map PRB_ID=SITE/CARRIER`` (or ``--src``), the destination
from ``--map ADDR=SITE/CARRIER`` (or ``--dst``).
"""

from __future__ import annotations

import json
from typing import Any

from analyzer.importers.common import (
    Check,
    Delays,
    End,
    Mapping,
    Parsed,
    Problem,
    check_time,
    delays_disagree,
    make_result,
    over_tmax,
)
from ixmeter.core.errors import RecordError
from ixmeter.core.record import Hop, Method, Result, TypeP

SIZE_EXCLUDES_HEADER = 4570  # from this firmware on, ``size`` is the ICMP data without header
NAMED_ADDR = 4460  # before it, ping names the destination ``addr`` and the family ``pf``
MAX_PACKETS = 100_000


class _Refused(ValueError):
    """A result that cannot be imported as what it says."""


def documents(text: str) -> list[tuple[int, Any]]:
    """(line, object) of each result: the elements of a JSON array, JSON lines, or one
    object; where the text stops being JSON, (line, :class:`Problem`) instead."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        return _array(text)
    if stripped.startswith("{") and "\n" not in stripped.strip():
        return [_loads(text, text[:len(text) - len(stripped)].count("\n") + 1)]
    return [_loads(line, i) for i, line in enumerate(text.splitlines(), start=1)
            if line.strip()]


def _loads(text: str, line: int) -> tuple[int, Any]:
    try:
        return line, json.loads(text)
    except json.JSONDecodeError as exc:
        return line + exc.lineno - 1, Problem("", line + exc.lineno - 1, f"not JSON: {exc.msg}")


def _array(text: str) -> list[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    line, counted = text.count("\n", 0, pos) + 1, pos  # newlines counted up to ``counted``
    out: list[tuple[int, Any]] = []
    while True:
        pos = _skip(text, pos)
        line, counted = line + text.count("\n", counted, pos), pos
        if pos < len(text) and text[pos] == "]" and (not out or text[pos - 1] != ","):
            if text[pos + 1:].strip():
                out.append(_stop(text, pos, "text after the array"))
            return out
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            return [*out, (exc.lineno, Problem("", exc.lineno, f"not JSON: {exc.msg}"))]
        out.append((line, obj))
        pos = _skip(text, end)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos >= len(text) or text[pos] != "]":
            return [*out, _stop(text, pos, "not JSON: expected ',' or ']'")]


def _stop(text: str, pos: int, why: str) -> tuple[int, Problem]:
    line = text.count("\n", 0, pos) + 1
    return line, Problem("", line, why)


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def parse_atlas(text: str, name: str, m: Mapping) -> Parsed:
    """Atlas results -> records; a refused result is a problem at its line and index."""
    out = Parsed()
    for index, (line, doc) in enumerate(documents(text)):
        if isinstance(doc, Problem):
            out.problems.append(Problem(name, line, doc.reason))
            continue
        try:
            one = _one(doc, m, name, line, index)
        except (_Refused, RecordError, KeyError, TypeError, ValueError, OverflowError) as exc:
            why = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            out.problems.append(Problem(name, line, f"result [{index}]: {why}"))
            continue
        out.extend(one)
    return out


def _field(doc: dict[str, Any], key: str, kind: type, what: str = "") -> Any:
    """``doc[key]`` if it is of ``kind`` (never a bool), else refused."""
    value = doc.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _Refused(f"field {key!r}{what}: expected {kind.__name__}, got {value!r}")
    return value


def _firmware(doc: dict[str, Any]) -> int:
    fw: int = _field(doc, "fw", int, " (firmware)")
    if fw == 0:
        raise _Refused("firmware 0: an unknown result format (RIPE Atlas marks it malformed)")
    if fw < 4400:
        raise _Refused(f"firmware {fw}: the version-1 format holds only a summary (ping) or "
                       "text (traceroute), no per-packet result")
    return fw


def _one(doc: Any, m: Mapping, name: str, line: int, index: int) -> Parsed:
    if not isinstance(doc, dict):
        raise _Refused(f"not a result object: {str(doc)[:40]!r}")
    kind = doc.get("type")
    if kind not in ("ping", "traceroute"):
        raise _Refused(f"type {kind!r} is not ping or traceroute")
    fw = _firmware(doc)
    prb = str(_field(doc, "prb_id", int))
    addr = doc.get("addr") if kind == "ping" and fw < NAMED_ADDR else doc.get("dst_addr")
    if not isinstance(addr, str) or not addr:
        raise _Refused(f"no destination address ({'addr' if fw < NAMED_ADDR else 'dst_addr'})")
    src = m.by_probe.get(prb) or m.src
    dst = m.dst_for(addr)
    if src is None or dst is None:
        raise _Refused(f"no mapping for probe {prb} -> {addr}: give --probe-map and --map")
    af = _family(doc, fw, addr)
    start = check_time(_field(doc, "timestamp", int) * 1_000_000_000)
    src_addr = doc.get("src_addr")
    src = End(src.site, src.carrier, src_addr if isinstance(src_addr, str) else "")
    probe = m.probe_id or f"atlas-{prb}"
    if kind == "traceroute":
        return _traceroute(doc, m, probe, src, End(dst.site, dst.carrier, addr), af, start,
                           line)
    type_p = TypeP("icmp", af, _ping_size(doc, fw, m), m.dscp)
    return _ping(doc, m, probe, src, End(dst.site, dst.carrier, addr), type_p, start,
                 (name, line, index))


def _family(doc: dict[str, Any], fw: int, addr: str) -> int:
    af = doc.get("pf" if fw < NAMED_ADDR else "af", 6 if ":" in addr else 4)
    if af not in (4, 6) or (af == 6) != (":" in addr):
        raise _Refused(f"address family {af!r} does not match the address {addr!r}")
    return int(af)


def _ping_size(doc: dict[str, Any], fw: int, m: Mapping) -> int:
    """The ICMP message size (Type-P) by the firmware rule; --size must agree."""
    proto = str(doc.get("proto", "ICMP")).upper()
    if proto != "ICMP":
        raise _Refused(f"proto {proto!r}: only ICMP ping results are imported")
    size = doc.get("size")
    if fw < NAMED_ADDR or not isinstance(size, int) or isinstance(size, bool):
        if m.size is None:
            raise _Refused(f"firmware {fw} gives no usable packet size: give --size (the ICMP "
                           "message in octets, data + 8)")
        return m.size
    message = size + 8 if fw >= SIZE_EXCLUDES_HEADER else size
    if m.size is not None and m.size != message:
        raise _Refused(f"firmware {fw} size {size} is a {message}-octet ICMP message, "
                       f"--size says {m.size}")
    return message


def _ping(doc: dict[str, Any], m: Mapping, probe: str, src: End, dst: End, type_p: TypeP,
          start: int, where: tuple[str, int, int]) -> Parsed:
    out = Parsed()
    packets = _field(doc, "result", list)
    if len(packets) > MAX_PACKETS:
        raise _Refused(f"{len(packets)} packets: more than {MAX_PACKETS}")
    first_ttl = doc.get("ttl") if isinstance(doc.get("ttl"), int) else None
    rows: list[dict[str, Any]] = []
    printed: list[tuple[int, int]] = []
    last_answered: int | None = None
    for k, item in enumerate(packets):
        if not isinstance(item, dict):
            raise _Refused(f"packet {k}: not an object: {item!r}")
        if item.get("dup"):
            if last_answered is None:
                raise _Refused(f"packet {k}: a duplicate with no answered packet before it")
            rows[last_answered]["dup"] += 1
            continue
        row = _packet(item, k, m, src, first_ttl)
        if row["rtt_ns"] is not None:
            last_answered = len(rows)
            printed.append((row["rtt_ns"], 500))  # Atlas prints RTTs to the microsecond
        rows.append(row)
    for seq, row in enumerate(rows):
        out.add(where[1], make_result(probe_id=probe, dst=dst, method=Method.ICMP,
                                      type_p=type_p, seq=seq,
                                      sent_at_ns=start + seq * m.interval_ns,
                                      tmax_ns=m.tmax_ns, **row))
    out.checks.append(_check(doc, out.results, Delays.of(printed), where))
    return out


def _packet(item: dict[str, Any], k: int, m: Mapping, src: End,
            first_ttl: int | None) -> dict[str, Any]:
    """One entry of a ping result -> make_result's keywords (answered, lost or error)."""
    own = item.get("src_addr", item.get("srcaddr"))
    end = End(src.site, src.carrier, own) if isinstance(own, str) and own else src
    if "error" in item:
        return {"src": end, "rtt_ns": None, "error": str(item["error"])[:200], "dup": 0}
    if item.get("x") == "*" and "rtt" not in item:
        return {"src": end, "rtt_ns": None, "dup": 0}
    rtt = item.get("rtt")
    if not isinstance(rtt, int | float) or isinstance(rtt, bool) or not 0 <= rtt < 1e7:
        raise _Refused(f"packet {k}: not an RTT, a timeout or an error: {item!r}")
    rtt_ns = round(rtt * 1e6)
    if why := over_tmax(rtt_ns, m):
        raise _Refused(f"packet {k}: {why}")
    ttl = item.get("ttl", first_ttl)
    return {"src": end, "rtt_ns": rtt_ns, "dup": 0,
            "reply_ttl": ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else None}


def _check(doc: dict[str, Any], results: list[Result], delays: Delays | None,
           where: tuple[str, int, int]) -> Check:
    """The result's own sent/rcvd/dup/min/avg/max against the packets imported."""
    name, line, index = where
    got = sum(1 for r in results if r.rtt_ns is not None)
    lost = sum(1 for r in results if r.lost)
    errors = len(results) - got - lost
    dups = sum(r.dup for r in results)
    mine = f"{len(results)} packets, {got} received, {lost} lost, {errors} errors, " \
           f"{dups} duplicates" + (f", {delays.text()}" if delays else "")
    sent, rcvd = doc.get("sent"), doc.get("rcvd")
    if not isinstance(sent, int) or not isinstance(rcvd, int):
        return Check(name, line, f"atlas result [{index}]", "no sent/rcvd", mine,
                     "the result carries no summary to check against")
    tool = f"{sent} sent, {rcvd} received, {doc.get('dup', 0)} duplicates"
    avg = doc.get("avg")
    whys = []
    if rcvd != got or sent not in (got + lost, got + lost + errors):
        whys.append("the packets do not add up to the result's sent/rcvd")
    if isinstance(doc.get("dup"), int) and doc["dup"] != dups:
        whys.append("duplicates differ")
    if isinstance(avg, int | float) and avg >= 0:
        low, high = doc.get("min"), doc.get("max")
        tool += f", min/avg/max {low}/{avg}/{high} ms"
        if isinstance(low, int | float) and isinstance(high, int | float):
            why = delays_disagree(delays, float(low), float(avg), float(high), 0.0005)
            if why:
                whys.append(why)
    return Check(name, line, f"atlas result [{index}]", tool, mine, "; ".join(whys))


def _traceroute(doc: dict[str, Any], m: Mapping, probe: str, src: End, dst: End, af: int,
                start: int, line: int) -> Parsed:
    """Each hop's k-th reply forms trace k; a trace reached the destination if its last
    hop's reply came from the destination address."""
    proto = str(doc.get("proto", "UDP")).lower()
    if proto not in ("icmp", "udp", "tcp"):
        raise _Refused(f"traceroute proto {proto!r} is not ICMP, UDP or TCP")
    size = doc.get("size")
    if not isinstance(size, int) or isinstance(size, bool):
        raise _Refused("traceroute without its packet size")
    hops = _field(doc, "result", list)
    width = max((len(h.get("result", [])) for h in hops if isinstance(h, dict)), default=0)
    if not hops or width == 0:
        raise _Refused("a traceroute with no hop results")
    out = Parsed()
    type_p = TypeP(proto, af, size, m.dscp)
    for k in range(width):
        trace, error = _trace(hops, k)
        last = trace[-1]
        reached = last.addr == dst.addr
        if reached and last.rtt_ns is not None and (why := over_tmax(last.rtt_ns, m)):
            raise _Refused(f"trace {k}: {why}")
        out.add(line, make_result(probe_id=probe, src=src, dst=dst, method=Method.TRACEROUTE,
                                  type_p=type_p, seq=k, sent_at_ns=start, tmax_ns=m.tmax_ns,
                                  rtt_ns=last.rtt_ns if reached else None, error=error,
                                  hops=trace, lost=not reached or last.rtt_ns is None))
    return out


def _trace(hops: list[Any], k: int) -> tuple[tuple[Hop, ...], str | None]:
    """The k-th reply of every hop as one Paris trace; a hop's error makes it an error record."""
    trace: list[Hop] = []
    for h in hops:
        if not isinstance(h, dict) or not isinstance(h.get("hop"), int):
            raise _Refused(f"bad hop {str(h)[:60]!r}")
        if "error" in h:
            return (*trace, Hop(h["hop"], None)), f"hop {h['hop']}: {h['error']}"[:200]
        replies = h.get("result")
        if not isinstance(replies, list):
            raise _Refused(f"hop {h['hop']}: no result list")
        reply = replies[k] if k < len(replies) else {}
        if not isinstance(reply, dict):
            raise _Refused(f"hop {h['hop']}: bad reply {reply!r}")
        addr = reply.get("from")
        rtt = reply.get("rtt")
        rtt_ns = round(rtt * 1e6) if isinstance(rtt, int | float) and rtt >= 0 else None
        trace.append(Hop(h["hop"], addr if isinstance(addr, str) and addr else None,
                         rtt_ns if addr else None))
    return tuple(trace), None
