"""``ixmeter probe``: run the probe agent, or write a probe's config from the inventory.

    ixmeter probe run --config probe.yaml
    ixmeter probe check --config probe.yaml
    ixmeter probe config --inventory inventory/hunan.yaml --probe cs-yungu-ct > probe.yaml

Imports nothing heavy at import time (the agent is imported when ``run`` starts).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from ixmeter.core.errors import IxmeterError


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="measure, spool and upload until Ctrl-C or SIGTERM",
                         description="Run the probe agent: scheduler, ICMP/STAMP/traceroute, "
                                     "SQLite spool, signed uploads and /metrics. SIGHUP re-reads "
                                     "the config, the key files and the plan, without a "
                                     "restart.")
    run.add_argument("--config", required=True, help="probe config file (YAML or JSON)")
    run.add_argument("--duration", type=float, default=None,
                     help="stop by itself after this many seconds (tests, demos)")
    run.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    check = sub.add_parser("check", help="say what this host is missing to run the probe",
                           description="Check a probe host before it runs: config and key, "
                                       "spool, the sockets its plan needs (capabilities, "
                                       "source addresses), the clock and the collector. "
                                       "Exit status 1 if a check failed.")
    check.add_argument("--config", required=True, help="probe config file (YAML or JSON)")
    cfg = sub.add_parser("config", help="print a starting config for one probe of an inventory",
                         description="Print a probe config (YAML) that reads its targets "
                                     "from the inventory.")
    cfg.add_argument("--inventory", required=True, help="inventory file")
    cfg.add_argument("--probe", required=True, help="probe id in the inventory")
    cfg.add_argument("--collector", default="http://127.0.0.1:8443", help="collector URL")
    cfg.add_argument("--key-file", default="/etc/ixmeter/probe.key",
                     help="file holding the probe's hex key")
    cfg.add_argument("--spool", default="/var/lib/ixmeter/spool.db", help="spool file")
    cfg.add_argument("--metrics-port", type=int, default=9108, help="0 disables /metrics")


def run(args: argparse.Namespace) -> int:
    if args.action == "config":
        return _config(args)
    if args.action == "check":
        from probes.check import main

        return main(Path(args.config))
    return _run(args)


def _config(args: argparse.Namespace) -> int:
    import yaml

    from inventory.loader import load
    from probes.config import probe_config_for

    inv = load(args.inventory)
    if args.probe not in {p.id for p in inv.probes}:
        raise IxmeterError(f"probe {args.probe!r} is not in {args.inventory}",
                           hint="list probes with 'ixmeter inventory check FILE'")
    data = probe_config_for(Path(args.inventory), args.probe, collector_url=args.collector,
                            key_file=args.key_file, spool=args.spool,
                            metrics_port=args.metrics_port)
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    return 0


def _run(args: argparse.Namespace) -> int:
    import trio

    from probes.agent import Agent
    from probes.config import load_config

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    agent = Agent(load_config(args.config), config_path=Path(args.config))

    async def main() -> None:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, stop, agent.request_reload)
            if args.duration is not None:
                nursery.start_soon(_stop_after, stop, args.duration)
            await nursery.start(agent.run, stop)
            print(f"probe {agent.cfg.probe_id}: running {len(agent.jobs)} jobs, session "
                  f"{agent.session} (Ctrl-C or SIGTERM to stop)", file=sys.stderr, flush=True)
            await agent.done.wait()
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except BaseExceptionGroup as group:  # trio wraps errors raised inside nurseries
        raise _first_ixmeter_error(group) or group from None
    stats = agent.scheduler.statistics()
    print(f"probe {agent.cfg.probe_id}: {stats.started} probes sent, "
          f"{agent.uploader.uploaded} results uploaded, spool depth {agent._spool_depth}",
          file=sys.stderr)
    return 0


def _first_ixmeter_error(group: BaseExceptionGroup[BaseException]) -> IxmeterError | None:
    """The first user-facing error inside (nested) exception groups, if any."""
    for exc in group.exceptions:
        if isinstance(exc, IxmeterError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_ixmeter_error(exc)
            if found is not None:
                return found
    return None


async def _watch_signals(stop: object, reload: Callable[[], None]) -> None:
    """SIGINT, SIGTERM: stop (drain cleanly); SIGHUP: reload config, keys and plan."""
    import trio

    assert isinstance(stop, trio.Event)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for sig in signals:
            if sig == signal.SIGHUP:
                reload()
                continue
            stop.set()
            return


async def _stop_after(stop: object, seconds: float) -> None:
    import trio

    assert isinstance(stop, trio.Event)
    await trio.sleep(seconds)
    stop.set()
