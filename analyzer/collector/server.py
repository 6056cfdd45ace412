"""Serve a :class:`~analyzer.collector.app.Collector` over HTTP/1.1
(:mod:`analyzer.collector.h11server`), plus a retention task that applies the store's retention
policy hourly (raw results, minute and hour rollups older than configured; day rollups stay), a
task that builds the target-group rows of ended hour and day units (:mod:`analyzer.groups`,
when the collector has an inventory) and a watcher that reloads the keys file when it changes
(key rotation without restart)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from analyzer.collector.app import Collector
from analyzer.collector.h11server import HttpServer, Limits, server_ssl_context
from analyzer.collector.keys import KeysError, load_keys
from analyzer.store import Retention

log = logging.getLogger("ixmeter.collector")
PRUNE_EVERY_S = 3600.0
GROUPS_EVERY_S = 300.0  # target-group builds; a backlog goes a transaction at a time
GROUP_ROWS = 50_000  # path rows per group-build transaction (the store thread is shared)
KEYS_POLL_S = 2.0


def http_server(collector: Collector, tls: tuple[str, str] | None = None,
                limits: Limits | None = None) -> HttpServer:
    """The collector's app over HTTP; with ``tls`` = (certfile, keyfile) HTTPS only. The
    server's connection counts show on the collector's ``/metrics``."""
    context = None if tls is None else server_ssl_context(*tls)
    server = HttpServer(collector.app(), ssl_context=context, limits=limits)
    collector.metrics.watch_server(server.stats)
    return server


async def serve(collector: Collector, bind: str, *, retention: Retention | None = None,
                keys_path: str | None = None, tls: tuple[str, str] | None = None,
                limits: Limits | None = None,
                shutdown_trigger: Callable[..., Awaitable[None]] | None = None,
                task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Run until ``shutdown_trigger`` returns (or forever); reports the bound URLs."""
    try:
        async with trio.open_nursery() as nursery:

            async def http(task_status: trio.TaskStatus[list[str]]) -> None:
                server = http_server(collector, tls, limits)
                await server.serve(bind, shutdown_trigger=shutdown_trigger,
                                   task_status=task_status)
                nursery.cancel_scope.cancel()  # the server has shut down: stop retention too

            if retention:
                nursery.start_soon(_retention, collector, retention)
            if keys_path:
                nursery.start_soon(_watch_keys, collector, keys_path)
            if collector.inventory is not None:
                nursery.start_soon(_groups, collector)
            binds = await nursery.start(http)
            task_status.started(binds)
    finally:
        collector.store_thread.stop()


async def _retention(collector: Collector, policy: Retention) -> None:
    while True:
        removed = await collector.in_store_thread(collector.store.retain, policy,
                                                  time.time_ns())
        if any(removed.values()):
            log.info("retention: pruned %s", ", ".join(
                f"{n} {'raw results' if what == 'raw' else what + ' rollups'}"
                for what, n in removed.items()))
        await trio.sleep(PRUNE_EVERY_S)


async def _groups(collector: Collector) -> None:
    """Build target-group rows: one transaction at a time while there is a backlog (ingest
    goes on between them), then every :data:`GROUPS_EVERY_S`."""
    from analyzer import groups

    while True:
        try:
            n = await collector.in_store_thread(partial(
                groups.build, collector.store, collector.inventory, max_rows=GROUP_ROWS,
                max_runs=1))
        except Exception:  # the evidence is untouched: the next pass tries again
            log.exception("target groups: building failed")
            n = 0
        if n:
            log.info("target groups: %d rows built", n)
        await trio.sleep(0.05 if n else GROUPS_EVERY_S)


async def _watch_keys(collector: Collector, path: str) -> None:
    """Reload the key ring when the file's mtime changes; keep the old ring if it is broken."""
    last = os.stat(path).st_mtime_ns
    while True:
        await trio.sleep(KEYS_POLL_S)
        try:
            mtime = os.stat(path).st_mtime_ns
            if mtime != last:
                last = mtime
                collector.auth.keys = load_keys(path)
                log.info("keys: reloaded %s (%d probes)", path, len(collector.auth.keys.probes()))
        except (OSError, KeysError) as exc:
            log.error("keys: keeping the previous keys, cannot reload %s: %s", path, exc)
