"""CSV import: ``sent_at,src_site,src_carrier,dst_site,dst_carrier,method,seq,rtt_ms``.

``sent_at`` is ISO 8601 UTC; an empty ``rtt_ms`` is a lost packet (RFC 7680 §2.4). The header
line is required. Type-P comes from the mapping options (size, DSCP) and the method: ICMP echo,
or STAMP over UDP port 862 (RFC 8762 §4.1).
"""

from __future__ import annotations

import csv
import io

from analyzer.baselines import WindowError, parse_time
from analyzer.importers.common import (
    End,
    Mapping,
    Problem,
    check_time,
    default_probe_id,
    make_result,
)
from ixmeter.errors import RecordError
from ixmeter.record import Method, Result, TypeP

COLUMNS = ("sent_at", "src_site", "src_carrier", "dst_site", "dst_carrier", "method", "seq",
           "rtt_ms")


def parse_csv(text: str, name: str, m: Mapping) -> tuple[list[Result], list[Problem]]:
    """Rows -> results; every bad row becomes a :class:`Problem` with its line. A CSV syntax
    error (e.g. a stray quote or carriage return) stops the file at that line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    out: list[Result] = []
    problems: list[Problem] = []
    try:
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != COLUMNS:
            return [], [Problem(name, 1, f"header must be {','.join(COLUMNS)}")]
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            try:
                out.append(_row(row, m))
            except (ValueError, OverflowError, WindowError, RecordError) as exc:
                problems.append(Problem(name, reader.line_num, str(exc)))
    except csv.Error as exc:
        problems.append(Problem(name, reader.line_num, f"CSV syntax: {exc}"))
    return out, problems


def _row(row: list[str], m: Mapping) -> Result:
    if len(row) != len(COLUMNS):
        raise ValueError(f"expected {len(COLUMNS)} columns, got {len(row)}")
    sent_at, ss, sc, ds, dc, method, seq, rtt = (c.strip() for c in row)
    for col, value in zip(COLUMNS[1:5], (ss, sc, ds, dc), strict=True):
        if not value:
            raise ValueError(f"column {col!r} is empty")
    try:
        meth = Method(method)
    except ValueError:
        raise ValueError(f"column 'method': {method!r} is not icmp or stamp") from None
    if meth is Method.TRACEROUTE:
        raise ValueError("column 'method': traceroute rows cannot be imported from csv")
    if not seq.isdigit():
        raise ValueError(f"column 'seq': {seq!r} is not a non-negative integer")
    rtt_ns = None
    if rtt:
        try:
            ms = float(rtt)
        except ValueError:
            raise ValueError(f"column 'rtt_ms': {rtt!r} is not a number") from None
        if not 0 <= ms < 60_000:
            raise ValueError(f"column 'rtt_ms': {rtt} is outside [0, 60000)")
        rtt_ns = round(ms * 1e6)
    src, dst = End(ss, sc), End(ds, dc)
    if meth is Method.STAMP:
        type_p = TypeP("udp", 4, m.size or 44, m.dscp, 862)
    else:
        type_p = TypeP("icmp", 4, m.size or 64, m.dscp)
    sent_at_ns = check_time(parse_time(sent_at))
    return make_result(probe_id=m.probe_id or default_probe_id(src), src=src, dst=dst,
                       method=meth, type_p=type_p, seq=int(seq), sent_at_ns=sent_at_ns,
                       rtt_ns=rtt_ns, tmax_ns=m.tmax_ns)
