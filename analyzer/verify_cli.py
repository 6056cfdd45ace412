"""``ixmeter verify``: re-check the store's hash chain link by link (tamper evidence)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True,
                        help="SQLite file or postgresql://user@host/dbname URL")
    parser.add_argument("--head", help="a chain head quoted in a report: fail unless the "
                                       "intact chain contains it")


def run(args: argparse.Namespace) -> int:
    """Exit 0 if every link and every unpruned batch body matches (and ``--head`` is in the
    chain), 1 naming the first break or the missing head."""
    from analyzer.store import open_store

    store = open_store(args.db)
    try:
        report = store.verify_chain(args.head)
    finally:
        store.close()
    if report.ok and args.head and report.found_at is None:
        print(f"NOT FOUND: head {args.head} is not in the chain of {report.length} batches "
              f"(the database was rebuilt or is another one)")
        return 1
    if report.ok:
        print(f"ok: {report.length} batches, {report.bodies_checked} bodies re-hashed "
              f"(the rest pruned by retention), head {report.head}")
        if report.found_at is not None:
            print(f"the given head is batch #{report.found_at}: everything up to it is intact")
        return 0
    print(f"BROKEN after {report.length} good links (last good head {report.head}): "
          f"{report.broken}")
    return 1
