"""CSV import: ``sent_at,src_site,src_carrier,dst_site,dst_carrier,method,seq,rtt_ms``.

``sent_at`` is ISO 8601 with its UTC offset; a time without one is refused unless ``--tz ZONE``
says the zone it was written in (read as UTC it would move busy hours by the zone's offset). An
empty ``rtt_ms`` is a lost packet (RFC 7680 §2.4). The header line is required. Sites and
carriers must be ends of the inventory (``--inventory``). Type-P comes from the options (size,
DSCP) and the method: ICMP echo, or STAMP over UDP port 862 (RFC 8762 §4.1). A row repeated
(same path, Type-P, sequence number and time) is stored once and counted by the import
(:func:`analyzer.importers.cli.deduplicate`).
"""

from __future__ import annotations

import csv
import io

from analyzer.importers.common import (
    End,
    Mapping,
    Parsed,
    Problem,
    default_probe_id,
    make_result,
    over_tmax,
    parse_local_time,
)
from ixmeter.core.errors import RecordError
from ixmeter.core.record import Method, Result, TypeP

COLUMNS = ("sent_at", "src_site", "src_carrier", "dst_site", "dst_carrier", "method", "seq",
           "rtt_ms")


def parse_csv(text: str, name: str, m: Mapping) -> Parsed:
    """Rows -> results; every bad row becomes a :class:`Problem` with its line. A CSV syntax
    error (e.g. a stray quote or carriage return) stops the file at that line."""
    out = Parsed()
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != COLUMNS:
            out.problems.append(Problem(name, 1, f"header must be {','.join(COLUMNS)}"))
            return out
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            line = reader.line_num
            try:
                out.add(line, _row(row, m))
            except (ValueError, OverflowError, RecordError) as exc:
                out.problems.append(Problem(name, line, str(exc)))
    except csv.Error as exc:
        out.problems.append(Problem(name, reader.line_num, f"CSV syntax: {exc}"))
    return out


def _end(site: str, carrier: str, which: str, m: Mapping) -> End:
    for col, value in ((f"{which}_site", site), (f"{which}_carrier", carrier)):
        if not value:
            raise ValueError(f"column {col!r} is empty")
    why = m.unknown_end(site, carrier)
    if why:
        raise ValueError(f"columns '{which}_site', '{which}_carrier': {why}")
    return End(site, carrier)


def _row(row: list[str], m: Mapping) -> Result:
    if len(row) != len(COLUMNS):
        raise ValueError(f"expected {len(COLUMNS)} columns, got {len(row)}")
    sent_at, ss, sc, ds, dc, method, seq, rtt = (c.strip() for c in row)
    src, dst = _end(ss, sc, "src", m), _end(ds, dc, "dst", m)
    try:
        meth = Method(method)
    except ValueError:
        raise ValueError(f"column 'method': {method!r} is not icmp or stamp") from None
    if meth is Method.TRACEROUTE:
        raise ValueError("column 'method': traceroute rows cannot be imported from csv")
    if not seq.isdigit():
        raise ValueError(f"column 'seq': {seq!r} is not a non-negative integer")
    rtt_ns = _rtt(rtt, m)
    if meth is Method.STAMP:
        type_p = TypeP("udp", 4, m.size or 44, m.dscp, 862)
    else:
        type_p = TypeP("icmp", 4, m.size or 64, m.dscp)
    try:
        sent_at_ns = parse_local_time(sent_at, m.tz)
    except ValueError as exc:
        raise ValueError(f"column 'sent_at': {exc}") from None
    return make_result(probe_id=m.probe_id or default_probe_id(src), src=src, dst=dst,
                       method=meth, type_p=type_p, seq=int(seq), sent_at_ns=sent_at_ns,
                       rtt_ns=rtt_ns, tmax_ns=m.tmax_ns)


def _rtt(text: str, m: Mapping) -> int | None:
    if not text:
        return None
    try:
        ms = float(text)
    except ValueError:
        raise ValueError(f"column 'rtt_ms': {text!r} is not a number") from None
    if not 0 <= ms < 60_000:
        raise ValueError(f"column 'rtt_ms': {text} is outside [0, 60000)")
    rtt_ns = round(ms * 1e6)
    why = over_tmax(rtt_ns, m)
    if why:
        raise ValueError(f"column 'rtt_ms': {why}")
    return rtt_ns
