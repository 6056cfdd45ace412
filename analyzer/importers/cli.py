"""``ixmeter import``: load csv, ping, fping or RIPE Atlas files into a store.

All files are parsed first; if any row is bad, every problem is printed with its file and line
and nothing is written, unless ``--partial``. Results go through the store's ``write_batch`` in
batches whose id is derived from the file's content, so re-importing a file changes nothing
(idempotent) and every import extends the hash chain.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ixmeter.errors import IxmeterError

if TYPE_CHECKING:
    from analyzer.importers.common import Mapping, Problem
    from ixmeter.record import Result
    from ixmeter.wire import Batch

    Parser = Callable[[str, str, Mapping], tuple[list[Result], list[Problem]]]

FORMATS = ("csv", "ping", "fping", "atlas")
BATCH = 5000


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, help="store: SQLite file or postgresql:// URL")
    parser.add_argument("--format", required=True, choices=FORMATS, help="input format")
    parser.add_argument("files", nargs="+", metavar="FILE", help="files to import")
    parser.add_argument("--partial", action="store_true",
                        help="import the good rows even if some are bad")
    parser.add_argument("--probe-id", help="probe id for the imported results")
    parser.add_argument("--src", metavar="SITE/CARRIER", help="source end (ping, fping, atlas)")
    parser.add_argument("--dst", metavar="SITE/CARRIER", help="destination end (ping, atlas)")
    parser.add_argument("--map", action="append", default=[], metavar="ADDR=SITE/CARRIER",
                        help="destination address -> end (repeatable)")
    parser.add_argument("--probe-map", action="append", default=[],
                        metavar="PRB_ID=SITE/CARRIER", help="RIPE Atlas probe -> source end")
    parser.add_argument("--start", metavar="TIME",
                        help="ISO 8601 send time of the first packet (ping without -D, fping)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between packets (ping -i, fping -p / 1000); default 1")
    parser.add_argument("--size", type=int, help="ICMP message / UDP payload size (Type-P)")
    parser.add_argument("--dscp", type=int, default=0, help="DSCP of the imported packets")
    parser.add_argument("--tmax", type=float, default=3.0, help="loss threshold Tmax, seconds")


def _mapping(args: argparse.Namespace) -> Mapping:
    from analyzer.baselines import parse_time
    from analyzer.importers.common import Mapping, parse_end

    try:
        by_addr = {}
        for item in args.map:
            addr, _, end = item.partition("=")
            e = parse_end(end)
            by_addr[addr] = type(e)(e.site, e.carrier, addr)
        by_probe = {}
        for item in args.probe_map:
            prb, _, end = item.partition("=")
            by_probe[prb] = parse_end(end)
        return Mapping(probe_id=args.probe_id, src=parse_end(args.src) if args.src else None,
                       dst=parse_end(args.dst) if args.dst else None, by_addr=by_addr,
                       by_probe=by_probe, size=args.size, dscp=args.dscp,
                       tmax_ns=round(args.tmax * 1e9),
                       start_ns=parse_time(args.start) if args.start else None,
                       interval_ns=round(args.interval * 1e9))
    except ValueError as exc:
        raise IxmeterError(str(exc), hint="write ends as SITE/CARRIER, e.g. cs-ixp/CT") from None


def parser_for(fmt: str) -> Parser:
    from analyzer.importers.atlas import parse_atlas
    from analyzer.importers.csv_format import parse_csv
    from analyzer.importers.fping import parse_fping
    from analyzer.importers.ping import parse_ping

    return {"csv": parse_csv, "ping": parse_ping, "fping": parse_fping,
            "atlas": parse_atlas}[fmt]


def run(args: argparse.Namespace) -> int:
    mapping = _mapping(args)
    parse = parser_for(args.format)
    batches: list[Batch] = []
    problems: list[Problem] = []
    for name in args.files:
        try:
            raw = Path(name).read_bytes()
        except OSError as exc:
            raise IxmeterError(f"cannot read {name}: {exc.strerror}") from None
        results, bad = parse(raw.decode("utf-8", errors="replace"), name, mapping)
        problems.extend(bad)
        batches.extend(_batches(results, hashlib.sha256(raw).hexdigest()[:16], args.format))
    for p in problems:
        print(f"ixmeter import: {p}", file=sys.stderr)
    if problems and not args.partial:
        raise IxmeterError(f"{len(problems)} bad rows; nothing imported",
                           hint="fix them, or pass --partial to import the good rows")
    return _write(args.db, batches)


def _batches(results: list[Result], digest: str, fmt: str) -> list[Batch]:
    from ixmeter.wire import Batch

    by_probe: dict[str, list[Result]] = {}
    for r in results:
        by_probe.setdefault(r.probe_id, []).append(r)
    out = []
    for probe in sorted(by_probe):
        rs = by_probe[probe]
        for i in range(0, len(rs), BATCH):
            out.append(Batch(probe, f"import-{fmt}-{digest}-{i // BATCH}",
                             tuple(rs[i:i + BATCH])))
    return out


def _write(db: str, batches: list[Batch]) -> int:
    from analyzer.store import open_store

    store = open_store(db)
    accepted = duplicates = 0
    try:
        for b in batches:
            receipt = store.write_batch(b, time.time_ns())
            accepted += receipt.accepted
            duplicates += receipt.duplicate
        head = store.chain_head()
    finally:
        store.close()
    print(f"imported {accepted} results in {len(batches)} batches ({duplicates} already "
          f"present); chain head {head.head[:16]} (length {head.length})")
    return 0
