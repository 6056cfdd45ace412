"""The production WSGI server: ``ixmeter dashboard`` serves with waitress (no development-server
warning), and the serving benchmark runs at smoke size."""

from __future__ import annotations

import threading
import time
import urllib.request

from dash import Dash

from bench import dashboard_serve
from dashboard.app import create_app
from dashboard.cli import serve
from dashboard.context import Context


def test_waitress_serves_the_app(ctx: Context, capsys: object) -> None:
    app: Dash = create_app(ctx)
    port = dashboard_serve._free_port()
    thread = threading.Thread(target=serve, args=(app.server, "127.0.0.1", port, 2),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    body = b""
    while time.monotonic() < deadline and not body:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_dash-layout", timeout=5) as r:
                body = r.read()
                server = r.headers.get("Server")
        except OSError:
            time.sleep(0.2)
    assert body
    assert server == "ixmeter-dashboard"


def test_serving_benchmark_at_smoke_size() -> None:
    rows = dashboard_serve.main(["--clients", "2", "--requests", "4"])
    by = {r["server"]: r for r in rows}
    assert by["waitress"]["requests"] == 8
    assert by["waitress"]["dev_warning"] is False
