"""``ixmeter verify``: check the store against its hash chain, read-only (docs/auditor.md);
``ixmeter verify --export-head FILE`` also publishes the head it checked, optionally signed."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True,
                        help="SQLite file or postgresql://user@host/dbname URL (opened "
                             "read-only)")
    parser.add_argument("--deep", action="store_true",
                        help="also rebuild the rollups from the stored raw results and "
                             "compare them row by row")
    parser.add_argument("--inventory", help="with --deep: also rebuild the target-group rows "
                                            "of this inventory's groupings from the stored "
                                            "path rows and compare them")
    parser.add_argument("--head", help="a chain head quoted in a report: fail unless the "
                                       "intact chain contains it")
    parser.add_argument("--head-file", help="a head export (`--export-head`): fail unless the "
                                            "intact chain contains its head")
    parser.add_argument("--public-key", help="with --head-file: the publisher's Ed25519 "
                                             "public key (hex, or a file holding it); fail "
                                             "unless the export is signed by it")
    parser.add_argument("--export-head", metavar="FILE",
                        help="when the store is intact, write its head as JSON to FILE")
    parser.add_argument("--sign-key", help="with --export-head: sign it with this Ed25519 "
                                           "private key (`ixmeter keys signing`)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Exit 0 if the store holds exactly what its chain commits to (and the given head is
    in it), 1 naming every problem found."""
    from analyzer import heads
    from analyzer.store import open_reader

    wanted = args.head
    if args.head_file:
        published = heads.load(args.head_file)
        if args.public_key:
            heads.check_signature(published, args.public_key)
        wanted = published.head
    store = open_reader(args.db)
    try:
        report = store.verify(wanted, deep=args.deep)
        if args.deep and args.inventory:
            _deep_groups(store, args.inventory, report)
    finally:
        store.close()
    missing = bool(wanted) and report.ok and report.found_at is None
    if args.json:
        print(json.dumps(_as_json(report, wanted, missing), sort_keys=True, indent=1))
    else:
        _print(report, wanted, missing)
    if report.ok and not missing and args.export_head:
        _export(args, report.length, report.head)
    return 0 if report.ok and not missing else 1


def _deep_groups(store: object, inventory: str, report: object) -> None:
    """``--deep --inventory``: the group rows against their paths' rows
    (:func:`analyzer.groups.check`)."""
    from analyzer import groups
    from analyzer.store.base import Report
    from inventory.loader import load

    assert isinstance(report, Report)
    compared, problems = groups.check(store, load(inventory))
    for problem in problems:
        report.add(problem)
    report.deep_groups = compared


def _print(report: object, wanted: str | None, missing: bool) -> None:
    from analyzer.store.base import Report

    assert isinstance(report, Report)
    if not report.ok:
        print(f"EDITED: {len(report.findings) + report.more} problem(s) in a chain of "
              f"{report.length} intact links:")
        for finding in report.findings:
            print(f"- {finding}")
        if report.more:
            print(f"- ... and {report.more} more")
        return
    rows = ", ".join(f"{t} {n:,}" for t, n in report.rows_checked.items())
    print(f"ok: {report.length} links, {report.batches} batches ({report.raw_checked} with raw "
          f"results re-hashed, {report.raw_pruned} pruned by retention); rows checked: {rows}")
    if report.deep_rows is not None:
        print(f"deep: {report.deep_rows:,} rollup rows equal the rollups rebuilt from the raw "
              "results")
    if report.deep_groups is not None:
        print(f"deep: {report.deep_groups:,} target-group rows equal the merge of their "
              "paths' rows")
    if report.unfolded:
        print(f"{report.unfolded} batch(es) not folded into the rollups yet (readers fold them "
              "in memory)")
    print(f"head {report.head}")
    if missing:
        print(f"NOT FOUND: head {wanted} is not in the chain (the store was rebuilt, or it is "
              "another store)")
    elif report.found_at is not None:
        print(f"the given head is link #{report.found_at}: everything up to it is intact")


def _as_json(report: object, wanted: str | None, missing: bool) -> dict[str, object]:
    from dataclasses import asdict

    out = asdict(report)  # type: ignore[call-overload]
    out.update(ok=report.ok and not missing, head_given=wanted)  # type: ignore[attr-defined]
    return dict(out)


def _export(args: argparse.Namespace, length: int, head: str) -> None:
    from analyzer import heads

    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    published = heads.PublishedHead(_store_name(args.db), length, head, at)
    if args.sign_key:
        published = heads.sign(published, args.sign_key)
    with open(args.export_head, "w", encoding="utf-8") as out:
        out.write(published.to_json())
    print(f"head written to {args.export_head}" + (" (signed)" if args.sign_key else ""))


def _store_name(db: str) -> str:
    from analyzer.store.connection import is_postgres_url, redact

    return redact(db) if is_postgres_url(db) else db.rsplit("/", 1)[-1]
