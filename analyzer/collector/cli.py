"""``ixmeter collector serve``: the HTTP collector in front of a SQLite or PostgreSQL store."""

from __future__ import annotations

import argparse
import logging
from functools import partial
from typing import TYPE_CHECKING

from ixmeter.core.errors import IxmeterError

if TYPE_CHECKING:
    from analyzer.collector.app import Collector
    from analyzer.collector.h11server import Limits
    from analyzer.store import Retention

DEFAULT_BIND = "127.0.0.1:8650"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = sub.add_parser("serve", help="accept signed result batches over HTTP",
                           description="Accept signed result batches (docs/collector.md).")
    serve.add_argument("--db", required=True,
                       help="SQLite file or postgresql://user@host/dbname URL")
    serve.add_argument("--bind", default=DEFAULT_BIND,
                       help=f"HOST:PORT to listen on (default {DEFAULT_BIND}; [::1]:PORT for "
                            "IPv6, [::]:PORT for both; unix:PATH for a Unix socket)")
    serve.add_argument("--keys", required=True,
                       help="YAML/JSON file probe_id -> hex key(s); reloaded when it changes")
    serve.add_argument("--inventory", help="inventory YAML: served to probes, and its absolute "
                                           "policy thresholds are counted exactly in rollups")
    serve.add_argument("--max-body-mib", type=float, default=8.0,
                       help="largest accepted request body in MiB (default 8)")
    _retention_flags(serve)
    serve.add_argument("--certfile", help="TLS certificate (PEM): serve HTTPS instead of HTTP")
    serve.add_argument("--keyfile", help="TLS private key (PEM) of --certfile")
    serve.add_argument("--max-skew-s", type=float, default=300.0,
                       help="accepted difference between probe and collector clocks (s)")
    serve.add_argument("--max-connections", type=int, default=None, metavar="N",
                       help="open connections served at once; more are answered 503 and "
                            "closed (default 512, fewer if the open-file limit is low)")
    compact = sub.add_parser(
        "compact", help="fold the rollups of stored batches not yet folded (maintenance)",
        description="Fold the rollups of every batch not folded yet into the rollup tables "
                    "(each fold a link of the hash chain). Safe while collectors run; reads "
                    "give the same figures before and after.")
    compact.add_argument("--db", required=True,
                         help="SQLite file or postgresql://user@host/dbname URL")
    compact.add_argument("--inventory", help="also build the target-group rows of its policy "
                                             "targets for every ended hour and day unit")
    _retention_flags(compact)


def _retention_flags(parser: argparse.ArgumentParser) -> None:
    """Retention, one flag per kind of evidence (docs/operations.md: storage per year)."""
    parser.add_argument("--retention-days", type=float, default=0.0, metavar="DAYS",
                        help="delete raw results sent more than DAYS ago (hourly when "
                             "serving); rollups and the chain stay (default 0: keep them all)")
    parser.add_argument("--minute-rollup-days", type=float, default=0.0, metavar="DAYS",
                        help="delete minute rollups of UTC days wholly more than DAYS ago; "
                             "hour and day rollups stay (default 0: keep them all)")
    parser.add_argument("--hour-rollup-days", type=float, default=0.0, metavar="DAYS",
                        help="delete hour rollups of UTC days wholly more than DAYS ago; day "
                             "rollups are kept for ever (default 0: keep them all)")


def _retention(args: argparse.Namespace) -> Retention:
    from analyzer.store import Retention

    days = (args.retention_days, args.minute_rollup_days, args.hour_rollup_days)
    if any(d < 0 for d in days):
        raise IxmeterError("--retention-days, --minute-rollup-days and --hour-rollup-days "
                           "cannot be negative")
    return Retention(*(d or None for d in days))


def run(args: argparse.Namespace) -> int:
    if args.action == "compact":
        return _compact(args.db, _retention(args), args.inventory)
    return _serve(args)


def _compact(db: str, retention: Retention, inventory: str | None) -> int:
    import time

    from analyzer import groups
    from analyzer.store import open_store
    from inventory.loader import load

    store = open_store(db)
    try:
        folded = store.fold_pending(everything=True)
        pruned = store.retain(retention, time.time_ns())
        if inventory:
            print(f"target groups: {groups.build(store, load(inventory))} rows built")
        head = store.chain_head()
    finally:
        store.close()
    print(f"folded the rollups of {folded} batch(es); chain head {head.head} "
          f"({head.length} links)")
    for what, n in pruned.items():
        print(f"retention: pruned {n} {'raw results' if what == 'raw' else what + ' rollups'}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import trio

    from analyzer.collector.app import Collector
    from analyzer.collector.auth import Authenticator
    from analyzer.collector.inventory import thresholds_ns
    from analyzer.collector.keys import load_keys
    from analyzer.store import open_store

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    keys = load_keys(args.keys)
    inv = None
    if args.inventory:
        from inventory.loader import load
        inv = load(args.inventory)
    if args.max_body_mib <= 0:
        raise IxmeterError("--max-body-mib must be positive")
    if bool(args.certfile) != bool(args.keyfile):
        raise IxmeterError("--certfile and --keyfile go together")
    tls = (args.certfile, args.keyfile) if args.certfile else None
    limits = _limits(args.max_connections)
    store = open_store(args.db, thresholds_ns(inv))
    collector = Collector(store, Authenticator(keys, args.max_skew_s), inv,
                          max_body=int(args.max_body_mib * 1024 * 1024))
    retention = _retention(args)
    try:
        trio.run(_main, collector, args.bind, retention, args.keys, tls, limits)
    finally:
        try:
            store.fold_pending()  # what it holds in memory: readers need not rebuild it
        finally:
            store.close()
    return 0


def _limits(max_connections: int | None) -> Limits:
    from analyzer.collector.h11server import Limits, default_max_connections

    allowed = default_max_connections()
    if max_connections is None:
        return Limits(max_connections=allowed)
    if max_connections < 1:
        raise IxmeterError("--max-connections must be at least 1")
    if max_connections > allowed:
        logging.getLogger("ixmeter.collector").warning(
            "--max-connections %d is more than the open-file limit leaves room for (%d): "
            "raise it (ulimit -n) or accept() will fail before the limit", max_connections,
            allowed)
    return Limits(max_connections=max_connections)


async def _main(collector: Collector, bind: str, retention: Retention, keys: str,
                tls: tuple[str, str] | None, limits: Limits) -> None:
    import trio

    from analyzer.collector.server import serve

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, collector, bind, retention=retention,
                                            keys_path=keys, tls=tls, limits=limits))
        logging.getLogger("ixmeter.collector").info("listening on %s", ", ".join(binds))
