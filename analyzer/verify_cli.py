"""``ixmeter verify``: re-check the store's hash chain link by link (tamper evidence)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True,
                        help="SQLite file or postgresql://user@host/dbname URL")


def run(args: argparse.Namespace) -> int:
    """Exit 0 if every link and every unpruned batch body matches, 1 naming the first break."""
    from analyzer.store import open_store

    store = open_store(args.db)
    try:
        report = store.verify_chain()
    finally:
        store.close()
    if report.ok:
        print(f"ok: {report.length} batches, {report.bodies_checked} bodies re-hashed "
              f"(the rest pruned by retention), head {report.head}")
        return 0
    print(f"BROKEN after {report.length} good links (last good head {report.head}): "
          f"{report.broken}")
    return 1
