"""``ixmeter demo``: the main job end to end on the built-in emulated network (docs/demo.md).

1. the testbed from the inventory (three sites x three carriers by default) on the ``baseline``
   (detour) profile; 2. a STAMP reflector and a probe agent in every host's namespace, the
   collector on a unix socket; 3. a baseline phase, the switch to the ``direct`` profile, a
   current phase, with progress; 4. the probes stopped and drained, the analysis over the two
   measured windows, the auditor's report and the verdict table; 5. the dashboard until Ctrl-C.
Ctrl-C at any stage stops every process and removes every namespace. The verdicts come from the
stored measurements only; the profiles' numbers are never read by the analysis.

Python API: :func:`run_demo` with a :class:`DemoOptions`.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from ixmeter.demo.plan import DEFAULT_DURATION_S, DEFAULT_SITES, DemoError

__all__ = ["DemoError", "DemoOptions", "configure", "run", "run_demo"]


@dataclass(frozen=True)
class DemoOptions:
    """Everything ``ixmeter demo`` takes on the command line."""

    duration_s: float = DEFAULT_DURATION_S
    inventory: Path | None = None
    sites: tuple[str, ...] = DEFAULT_SITES
    out: Path = Path("out")
    dashboard: bool = True
    port: int = 8050
    instance: str = "demo"
    mode: str = "auto"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION_S, metavar="SECONDS",
                        help=f"measurement time in all: baseline + settling minute + current "
                             f"(default {DEFAULT_DURATION_S:g}: 10 min per phase, the least a "
                             f"latency verdict needs)")
    parser.add_argument("--inventory", metavar="FILE",
                        help="inventory file (default: the Hunan seed)")
    parser.add_argument("--sites", default=",".join(DEFAULT_SITES), metavar="ID,ID,...",
                        help=f"sites to emulate (default {','.join(DEFAULT_SITES)})")
    parser.add_argument("--out", default="out", metavar="DIR",
                        help="results database, report and logs (default out/)")
    parser.add_argument("--no-dashboard", action="store_true",
                        help="stop after the report instead of serving the dashboard")
    parser.add_argument("--port", type=int, default=8050,
                        help="dashboard port on 127.0.0.1 (default 8050)")
    parser.add_argument("--mode", choices=("auto", "netns", "loopback"), default="auto",
                        help="auto (default): network namespaces when root, else the "
                             "unprivileged loopback mode (STAMP only)")
    parser.add_argument("--instance", default="demo",
                        help="testbed instance name (namespaces ixm-INSTANCE-*; default demo)")


def run(args: argparse.Namespace) -> int:
    from inventory.loader import default_inventory

    opts = DemoOptions(duration_s=args.duration,
                       inventory=Path(args.inventory) if args.inventory else default_inventory(),
                       sites=tuple(s for s in args.sites.split(",") if s),
                       out=Path(args.out), dashboard=not args.no_dashboard, port=args.port,
                       instance=args.instance, mode=args.mode)
    return run_demo(opts)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, so the same cleanup runs for both (SIGINT
    too when the demo was started with it ignored, as a shell does for a background job)."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, handler)
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)


def choose_mode(asked: str = "auto") -> tuple[str, str]:
    """(``netns`` or ``loopback``, why). ``auto`` takes namespaces when this process may build
    them (root or CAP_NET_ADMIN, /dev/net/tun, iproute2), else the unprivileged loopback mode."""
    from testbed.netns import check_privileges

    if asked == "loopback":
        return "loopback", "asked for with --mode loopback"
    missing = check_privileges().missing
    if not missing:
        return "netns", "network namespaces available"
    if asked == "netns":
        raise DemoError("the namespace testbed needs: " + "; ".join(missing),
                        hint="run as root (sudo make demo), or use --mode loopback")
    return "loopback", "no network namespaces: missing " + "; ".join(missing)


def _fault_history(opts: DemoOptions, out: Path) -> None:
    """The fault rules shown on a synthetic six-day history in a store of its own
    (:mod:`ixmeter.demo.history`): the live run is minutes long, the rules need days."""
    from datetime import datetime

    from inventory.loader import default_inventory, load
    from ixmeter.demo import history

    inventory = opts.inventory or default_inventory()
    if not load(inventory).fault_rules:
        return
    print("\nfault rules on a SYNTHETIC six-day history (the live run lasts minutes, the rules "
          "need days; docs/demo.md):", flush=True)
    today = datetime.now(history.TZ).date()
    print(history.show(out / "synthetic", inventory, today), flush=True)


def run_demo(opts: DemoOptions) -> int:
    """Run the demo; 0 when the report was written (whatever the verdicts say)."""
    from ixmeter.demo import finish, runner

    out = opts.out.resolve()
    with _interruptible():
        try:
            measured = runner.measure_all(opts, out, *choose_mode(opts.mode))
        except KeyboardInterrupt:
            print("demo: interrupted; every process, namespace and device is gone",
                  file=sys.stderr)
            return 130
        print("\nanalysing the two windows (block bootstrap, 2,000 replicates) ...", flush=True)
        t0 = time.monotonic()
        try:
            analysis = finish.analyze(measured.db, measured.inventory, measured.timeline,
                                      out / "report")
        except KeyboardInterrupt:
            print("demo: interrupted during the analysis", file=sys.stderr)
            return 130
        print(f"analysis and report took {time.monotonic() - t0:.0f} s\n")
        print(finish.verdict_table(analysis.evaluation))
        for note in measured.notes + finish.demo_notes(analysis.evaluation, opts.duration_s):
            print(f"demo note: {note}")
        print(f"\nreport: {analysis.report_dir}/ ({', '.join(analysis.files[:3])} and "
              f"{len(analysis.files) - 3} CSV files)")
        print(f"reproduce it: {analysis.command}")
        _fault_history(opts, out)
        if not opts.dashboard:
            return 0
        with contextlib.suppress(KeyboardInterrupt):
            finish.serve_dashboard(measured.db, measured.inventory, measured.timeline,
                                   opts.port)
        print("dashboard stopped; the demo is over", file=sys.stderr)
    return 0
