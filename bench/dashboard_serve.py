"""Benchmark: the dashboard's WSGI server, waitress against Flask's development server.

Fills a small store (``analyzer.synthetic.exchange``, the shape of the demo's short window),
builds the app, warms its caches, then serves it on a free loopback port with each server in
turn and sends
``--clients`` concurrent clients x ``--requests`` requests each, a mix of what a browser asks
for on the first page: ``GET /`` (the shell), ``GET /_dash-layout``,
``GET /_dash-dependencies`` and ``POST /_dash-update-component`` of the overview (the page
itself, from warm caches). Prints requests/s and the median and p95 latency per server, and
whether the server printed a development-server warning.

gunicorn is not in this comparison: its workers are processes, each with its own copy of the
data caches (the one-year warm-up is about a minute and 1.2 GB per process, docs/dashboard.md)
and its own SQLite connection; one gthread worker is the same model as waitress.

    .venv/bin/python -m bench.dashboard_serve                 # 8 clients x 50 requests
    .venv/bin/python -m bench.dashboard_serve --clients 2 --requests 5   # smoke size
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NS = 1_000_000_000
MIN = 60 * NS


def _context(folder: Path) -> Any:
    from analyzer.store import open_store
    from analyzer.synthetic import exchange
    from analyzer.views import Window
    from dashboard.context import Context
    from inventory.loader import default_inventory, load
    from inventory.topology import Topology

    topo = Topology(load(default_inventory()))
    end = time.time_ns() // MIN * MIN
    window = Window(end - 12 * MIN, end)
    store = open_store(folder / "current.db")
    exchange.fill(store, topo, exchange.DemoPlan(exchange.DEFAULT_SITES, window, window, 20), end)
    return Context(store, topo, window, window, replicates=200)


def _overview_body(app: Any) -> bytes:
    """What the browser posts for the overview callback (its outputs, inputs and state)."""
    body = {"output": "..ov-body.children...ov-generation.data..",
            "outputs": [{"id": "ov-body", "property": "children"},
                        {"id": "ov-generation", "property": "data"}],
            "inputs": [{"id": "lang-store", "property": "data", "value": "en"},
                       {"id": "ov-tick", "property": "n_intervals", "value": None}],
            "state": [{"id": "ov-generation", "property": "data", "value": None}],
            "changedPropIds": ["lang-store.data"]}
    return json.dumps(body).encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _serving(kind: str, wsgi: Any, port: int) -> Iterator[str]:
    """Serve ``wsgi`` on 127.0.0.1:``port`` in a thread; yields what the server printed."""
    err = io.StringIO()
    if kind == "waitress":
        from waitress import create_server

        server = create_server(wsgi, host="127.0.0.1", port=port, threads=8)
        thread = threading.Thread(target=server.run, daemon=True)

        def stop() -> None:
            # workers first: closing the server first closes the trigger a finishing worker
            # still writes to (EBADF in a worker thread, now and then)
            server.task_dispatcher.shutdown()
            server.close()
    else:
        from werkzeug.serving import make_server

        with contextlib.redirect_stderr(err):
            srv = make_server("127.0.0.1", port, wsgi, threaded=True)
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        stop = srv.shutdown
    thread.start()
    time.sleep(0.2)
    try:
        yield err.getvalue()
    finally:
        stop()


def _client(port: int, n: int, post: bytes, out: list[float]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    plan = [("GET", "/", None), ("GET", "/_dash-layout", None),
            ("GET", "/_dash-dependencies", None), ("POST", "/_dash-update-component", post)]
    for i in range(n):
        method, path, body = plan[i % len(plan)]
        t0 = time.perf_counter()
        conn.request(method, path, body=body,
                     headers={"Content-Type": "application/json"} if body else {})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status}")
        out.append(time.perf_counter() - t0)
    conn.close()


def measure(kind: str, app: Any, clients: int, requests: int) -> dict[str, Any]:
    port = _free_port()
    post = _overview_body(app)
    with _serving(kind, app.server, port) as printed:
        times: list[float] = []
        t0 = time.perf_counter()
        threads = [threading.Thread(target=_client, args=(port, requests, post, times))
                   for _ in range(clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
    times.sort()
    return {"server": kind, "requests": len(times), "per_s": round(len(times) / wall, 1),
            "median_ms": round(statistics.median(times) * 1000, 1),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))] * 1000, 1),
            "dev_warning": "development server" in printed.lower()}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_serve")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="per client")
    args = parser.parse_args(argv)
    from dashboard.app import create_app

    with tempfile.TemporaryDirectory(prefix="ixm-serve-") as tmp:
        ctx = _context(Path(tmp))
        ctx.warm()
        app = create_app(ctx)
        rows = [measure(kind, app, args.clients, args.requests)
                for kind in ("waitress", "werkzeug")]
        ctx.store.close()
    for row in rows:
        print(json.dumps(row))
    return rows


if __name__ == "__main__":
    main()
