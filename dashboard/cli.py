"""``ixmeter dashboard``: serve the read-only dashboard over a results database.

Imports nothing heavy at import time (Dash and Plotly load in :func:`run`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ixmeter.core.errors import IxmeterError

NS = 1_000_000_000
DAY_NS = 86_400 * NS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, metavar="FILE",
                        help="results database (SQLite file or postgresql:// URL)")
    parser.add_argument("--inventory", metavar="FILE",
                        help="inventory YAML (default: the packaged seed)")
    parser.add_argument("--port", type=int, default=8050, help="HTTP port (default 8050)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--baseline", metavar="FROM/TO",
                        help="baseline window: local dates YYYY-MM-DD/YYYY-MM-DD or ISO times "
                             "(default: the inventory's first measured baseline)")
    parser.add_argument("--current", metavar="FROM/TO",
                        help="current window, same form (default: the last 7 days)")
    parser.add_argument("--baseline-db", metavar="FILE",
                        help="a separate store holding the baseline window (as for "
                             "'ixmeter analyze --baseline-db'; the demo's baseline copy)")
    parser.add_argument("--live", action="store_true",
                        help="the current window is under way: re-read the stores every "
                             "minute until it has ended (the demo uses this)")
    parser.add_argument("--threads", type=int, default=8,
                        help="worker threads of the WSGI server (waitress; default 8)")
    parser.add_argument("--demo-data", action="store_true",
                        help="if the database is new, fill it with synthetic results of "
                             "'synthetic-*' probes first, labelled SYNTHETIC on every page "
                             "(development and screenshots only)")


def _window(text: str | None, flag: str, tz: str) -> object:
    """``FROM/TO``, the same form as ``ixmeter analyze``: two local dates (in ``tz``, the
    inventory's zone; ``TO`` inclusive) or two ISO 8601 times (``TO`` exclusive; no offset
    means UTC)."""
    from analyzer.baselines import WindowError, parse_window
    from analyzer.views import Window

    if text is None:
        return None
    parts = text.split("/")
    if len(parts) != 2:
        raise IxmeterError(f"{flag} {text!r}: expected FROM/TO",
                           hint="e.g. 2026-01-05/2026-02-01 or 2026-01-05T00:00Z/2026-02-02T00:00Z")
    if all(len(p.strip()) == 10 for p in parts):
        try:
            return Window.from_local_dates(parts[0], parts[1], tz)
        except ValueError as exc:
            raise IxmeterError(f"{flag} {text!r}: {exc}", hint="dates are YYYY-MM-DD") from None
    try:
        window = parse_window(text)
    except WindowError as exc:
        raise IxmeterError(f"{flag} {text!r}: {exc}", hint="dates are YYYY-MM-DD") from None
    return Window(window.start_ns, window.end_ns)


def build_context(args: argparse.Namespace) -> object:
    """Open the store and inventory and pick the windows (no server started)."""
    from analyzer.localtime import local_day_start
    from analyzer.store import is_postgres_url, open_reader, open_store
    from analyzer.synthetic import exchange
    from analyzer.views import Window
    from dashboard.context import Context
    from inventory.loader import default_inventory, load
    from inventory.topology import Topology

    if not is_postgres_url(args.db) and not args.demo_data and not Path(args.db).exists():
        raise IxmeterError(f"no database at {args.db!r}",
                           hint="give the collector's --db file, or add --demo-data")
    inv_path = Path(args.inventory) if args.inventory else default_inventory()
    topo = Topology(load(inv_path))
    tz = topo.inv.timezone
    base_arg = _window(args.baseline, "--baseline", tz)
    cur = _window(args.current, "--current", tz)
    now = time.time_ns()
    plan = exchange.default_plan(topo, now, sites=exchange.SHOW_SITES)
    if args.demo_data:  # the one write, before serving: synthetic data into an empty store
        writer = open_store(args.db)
        try:
            if writer.chain_head().length == 0:
                print("filling the database with synthetic demo data ...")
                exchange.fill(writer, topo, plan, now)
        finally:
            writer.close()
    if args.baseline_db and not is_postgres_url(args.baseline_db) and \
            not Path(args.baseline_db).exists():
        raise IxmeterError(f"no database at {args.baseline_db!r}",
                           hint="give the baseline store's file, or leave --baseline-db out")
    store = open_reader(args.db)  # the dashboard itself only reads
    base_store = open_reader(args.baseline_db) if args.baseline_db else None
    base = base_arg or plan.baseline
    if cur is None:  # the last 7 local days, today included
        end = local_day_start(now, tz) + DAY_NS
        cur = Window(end - 7 * DAY_NS, end)
    return Context(store, topo, base, cur, inventory_path=inv_path,  # type: ignore[arg-type]
                   baseline_store=base_store, live=args.live)


def run(args: argparse.Namespace) -> int:
    from dashboard.app import create_app

    ctx = build_context(args)
    started = time.monotonic()
    try:
        ctx.warm()  # type: ignore[attr-defined]
    except Exception as exc:  # the pages still serve and say why there are no verdicts
        print(f"warning: evaluation failed ({type(exc).__name__}: {exc})")
    print(f"data loaded and evaluated in {time.monotonic() - started:.1f} s")
    app = create_app(ctx)  # type: ignore[arg-type]
    print(f"ixmeter dashboard on http://{args.host}:{args.port}/ (waitress, "
          f"{args.threads} threads; Ctrl-C stops it)", flush=True)
    serve(app.server, args.host, args.port, args.threads)
    return 0


def serve(wsgi: object, host: str, port: int, threads: int = 8) -> None:
    """Serve a WSGI app with waitress until Ctrl-C (docs/dashboard.md "Serving": chosen over
    gunicorn and Flask's development server by measurement; put a reverse proxy in front)."""
    from waitress import create_server

    server = create_server(wsgi, host=host, port=port, threads=threads,
                           ident="ixmeter-dashboard", clear_untrusted_proxy_headers=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
