"""``ixmeter import``: load csv, ping, fping or RIPE Atlas files into a store.

All files are parsed first. Every refused line is printed as ``file:line: reason``, and so is
every run whose tool summary (ping's statistics, fping's ``xmt/rcv``, Atlas ``sent``/``rcvd``)
differs from what was imported, with the reason; then nothing is written, unless ``--partial``,
which imports the rest and lists what it left out (a refused line never becomes a loss). Ends
(``--src``, ``--dst``, ``--map``, ``--probe-map`` and the csv columns) must be sites and
carriers of the inventory. A result repeated (same path, method, Type-P, sequence number and
send time), within the import or already in the store, is stored once and counted; one that
differs from its twin is refused with both places. The whole import is one transaction
(``Store.write_batches``): all of it or nothing. Batch ids are the sha256 of their results, so
importing the same data twice adds nothing, and every import extends the hash chain.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ixmeter.core.errors import IxmeterError

if TYPE_CHECKING:
    from analyzer.importers.common import End, Mapping, Parsed, Problem
    from analyzer.store.base import Store
    from ixmeter.core.record import Result
    from ixmeter.core.wire import Batch

    Parser = Callable[[str, str, Mapping], Parsed]

FORMATS = ("csv", "ping", "fping", "atlas")
BATCH = 5000
Key = tuple[str, str, str, int, int]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, help="store: SQLite file or postgresql:// URL")
    parser.add_argument("--format", required=True, choices=FORMATS, help="input format")
    parser.add_argument("files", nargs="+", metavar="FILE", help="files to import")
    parser.add_argument("--inventory", metavar="FILE",
                        help="inventory whose sites and carriers the ends must be (default: "
                             "the packaged province seed)")
    parser.add_argument("--partial", action="store_true",
                        help="import what can be imported; list the refused lines and the "
                             "runs that disagree with their tool's summary")
    parser.add_argument("--probe-id", help="probe id for the imported results")
    parser.add_argument("--src", metavar="SITE/CARRIER", help="source end (ping, fping, atlas)")
    parser.add_argument("--dst", metavar="SITE/CARRIER", help="destination end (ping, atlas)")
    parser.add_argument("--map", action="append", default=[], metavar="ADDR=SITE/CARRIER",
                        help="destination address -> end (repeatable)")
    parser.add_argument("--probe-map", action="append", default=[],
                        metavar="PRB_ID=SITE/CARRIER", help="RIPE Atlas probe -> source end")
    parser.add_argument("--start", metavar="TIME",
                        help="ISO 8601 send time of the first packet (ping without -D, fping "
                             "without -D)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between packets (ping -i, fping -p / 1000, Atlas "
                             "packet interval); default 1")
    parser.add_argument("--tz", metavar="ZONE",
                        help="IANA zone of times written without a UTC offset (csv, --start); "
                             "without it such times are refused")
    parser.add_argument("--size", type=int,
                        help="ICMP message / UDP payload octets (Type-P) where the source does "
                             "not say; where it does, the two must agree")
    parser.add_argument("--dscp", type=int, default=0, help="DSCP of the imported packets")
    parser.add_argument("--tmax", type=float, default=3.0,
                        help="loss threshold Tmax in seconds: at least the tool's own timeout "
                             "(a reply above it is refused, never cut); default 3")


def _ends(args: argparse.Namespace, sites: dict[str, frozenset[str]]
          ) -> tuple[End | None, End | None, dict[str, End], dict[str, End]]:
    from analyzer.importers.common import End, parse_end

    def end(text: str, option: str) -> End:
        e = parse_end(text)
        if e.site not in sites or e.carrier not in sites[e.site]:
            raise ValueError(f"{option} {text}: not a site/carrier of the inventory")
        return e

    by_addr = {}
    for item in args.map:
        addr, _, text = item.partition("=")
        e = end(text, f"--map {addr}=")
        by_addr[addr] = End(e.site, e.carrier, addr)
    by_probe = {}
    for item in args.probe_map:
        prb, _, text = item.partition("=")
        by_probe[prb] = end(text, f"--probe-map {prb}=")
    return (end(args.src, "--src") if args.src else None,
            end(args.dst, "--dst") if args.dst else None, by_addr, by_probe)


def inventory_sites(path: str | None) -> dict[str, frozenset[str]]:
    """Site -> its carriers, from the inventory (``--inventory`` or the packaged seed)."""
    from inventory.loader import default_inventory, load

    inv = load(Path(path) if path else default_inventory())
    return {s.id: frozenset(s.carriers) for s in inv.sites}


def mapping(args: argparse.Namespace) -> Mapping:
    from analyzer.importers.common import Mapping, parse_local_time, zone_info

    try:
        if args.tz:
            zone_info(args.tz)
        sites = inventory_sites(args.inventory)
        src, dst, by_addr, by_probe = _ends(args, sites)
        if args.tmax <= 0 or args.interval <= 0:
            raise ValueError("--tmax and --interval must be positive")
        return Mapping(probe_id=args.probe_id, src=src, dst=dst, by_addr=by_addr,
                       by_probe=by_probe, size=args.size, dscp=args.dscp,
                       tmax_ns=round(args.tmax * 1e9),
                       start_ns=parse_local_time(args.start, args.tz) if args.start else None,
                       interval_ns=round(args.interval * 1e9), tz=args.tz, sites=sites)
    except ValueError as exc:
        raise IxmeterError(str(exc), hint="write ends as SITE/CARRIER of the inventory, e.g. "
                                          "cs-ixp/CT, and times with their UTC offset") from None


def parser_for(fmt: str) -> Parser:
    from analyzer.importers.atlas import parse_atlas
    from analyzer.importers.csv_format import parse_csv
    from analyzer.importers.fping import parse_fping
    from analyzer.importers.ping import parse_ping

    return {"csv": parse_csv, "ping": parse_ping, "fping": parse_fping,
            "atlas": parse_atlas}[fmt]


def parse_files(files: list[str], fmt: str, m: Mapping) -> list[tuple[str, Parsed]]:
    """Each file parsed (read as UTF-8; a byte that is not is refused with its line)."""
    from analyzer.importers.common import Parsed, Problem

    parse = parser_for(fmt)
    out = []
    for name in files:
        try:
            raw = Path(name).read_bytes()
        except OSError as exc:
            raise IxmeterError(f"cannot read {name}: {exc.strerror}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.append((name, Parsed(problems=[Problem(name, raw.count(b"\n", 0, exc.start)
                                                       + 1, "not UTF-8 text")])))
            continue
        out.append((name, parse(text, name, m)))
    return out


def _key(r: Result) -> Key:
    return (r.path_id, r.method.value, r.type_p.key(), r.seq, r.sent_at_ns)


def deduplicate(parsed: list[tuple[str, Parsed]]
                ) -> tuple[list[Result], int, list[Problem]]:
    """The results once each: a repeat (equal in every field) is counted; two results with one
    key (path, method, Type-P, seq, send time) that differ are both refused."""
    from analyzer.importers.common import Problem

    first: dict[Key, tuple[Result, str, int]] = {}
    clash: dict[Key, list[tuple[str, int]]] = {}
    repeats = 0
    for name, p in parsed:
        for r, line in zip(p.results, p.lines, strict=True):
            k = _key(r)
            seen = first.get(k)
            if seen is None:
                first[k] = (r, name, line)
            elif seen[0] == r:
                repeats += 1
            else:
                clash.setdefault(k, [(seen[1], seen[2])]).append((name, line))
    problems = [Problem(places[-1][0], places[-1][1],
                        f"same path, Type-P, seq and time as {places[0][0]}:{places[0][1]} "
                        "but a different result: neither is imported")
                for places in clash.values()]
    return [r for k, (r, _, _) in first.items() if k not in clash], repeats, problems


def _stored(store: Store, results: list[Result]) -> tuple[list[Result], int, list[str]]:
    """Drop the results the store already holds (counted); name those that differ."""
    from analyzer.store.base import Query

    by_path: dict[str, list[Result]] = {}
    for r in results:
        by_path.setdefault(r.path_id, []).append(r)
    keep, present, clashes = [], 0, []
    for path, rs in sorted(by_path.items()):
        lo, hi = min(r.sent_at_ns for r in rs), max(r.sent_at_ns for r in rs) + 1
        old = {_key(o): o for o in store.read_results(Query(lo, hi, path_ids=[path]))}
        for r in rs:
            twin = old.get(_key(r))
            if twin is None:
                keep.append(r)
            elif twin == r:
                present += 1
            else:
                clashes.append(f"{path} {r.type_p.key()} seq {r.seq}: the store holds a "
                               "different result with the same path, Type-P, seq and time")
    return keep, present, clashes


def run(args: argparse.Namespace) -> int:
    m = mapping(args)
    parsed = parse_files(args.files, args.format, m)
    results, repeats, clashes = deduplicate(parsed)
    problems = [p for _, one in parsed for p in one.problems] + clashes
    checks = [c for _, one in parsed for c in one.checks]
    for p in problems:
        print(f"ixmeter import: {p}", file=sys.stderr)
    for c in checks:
        print(f"ixmeter import: {c}", file=sys.stderr if not c.agrees else sys.stdout)
    differ = sum(1 for c in checks if not c.agrees)
    if (problems or differ) and not args.partial:
        raise IxmeterError(f"{len(problems)} refused lines, {differ} runs that differ from "
                           "their tool's summary; nothing imported",
                           hint="fix them, or pass --partial to import the rest")
    return _write(args.db, args.format, results, repeats, len(problems))


def batches_of(results: list[Result], fmt: str) -> list[Batch]:
    """Batches of at most BATCH results per probe, each named by the sha256 of its results."""
    from ixmeter.core.wire import Batch

    by_probe: dict[str, list[Result]] = {}
    for r in results:
        by_probe.setdefault(r.probe_id, []).append(r)
    out = []
    for probe in sorted(by_probe):
        rs = by_probe[probe]
        for i in range(0, len(rs), BATCH):
            part = tuple(rs[i:i + BATCH])
            digest = hashlib.sha256(json.dumps([r.to_dict() for r in part],
                                               sort_keys=True).encode()).hexdigest()
            out.append(Batch(probe, f"import-{fmt}-{digest[:32]}", part))
    return out


def _write(db: str, fmt: str, results: list[Result], repeats: int, refused: int) -> int:
    from analyzer.store import open_store

    store = open_store(db)
    try:
        results, present, clashes = _stored(store, results)
        if clashes:
            for c in clashes:
                print(f"ixmeter import: {c}", file=sys.stderr)
            raise IxmeterError(f"{len(clashes)} results differ from what the store holds; "
                               "nothing imported")
        batches = batches_of(results, fmt)
        receipts = store.write_batches(batches, time.time_ns()) if batches else []
        head = store.chain_head()
    finally:
        store.close()
    accepted = sum(r.accepted for r in receipts)
    print(f"imported {accepted} results in {len(batches)} batches, one transaction "
          f"({repeats} repeated in the input and {present} already in the store, stored once; "
          f"{refused} lines refused); chain head {head.head[:16]} (length {head.length})")
    return 0
