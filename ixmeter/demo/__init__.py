"""``ixmeter demo``: the main job end to end on the built-in emulated network (docs/demo.md).

1. two copies of the emulated network from the inventory (three sites x three carriers by
   default), one on the ``baseline`` (detour) profile and one on the ``direct`` profile, each
   with a STAMP reflector in every host's namespace and a collector writing its own store;
2. the live dashboard over both stores (unless ``--no-dashboard``), up before the probes start;
3. the probes of both copies measuring the same minutes, with a progress line that shows each
   copy's live inter-carrier median RTT and loss; 4. the probes stopped and drained, the analysis
   (current window from one store, baseline from the other), the auditor's report and the
   verdict table; 5. the fault rules on a synthetic history; the dashboard until Ctrl-C.
Ctrl-C at any stage stops every process and removes every namespace. The verdicts come from the
stored measurements only; the profiles' numbers are never read by the analysis.

Python API: :func:`run_demo` with a :class:`DemoOptions`.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import FrameType

from ixmeter.demo.plan import DEFAULT_DURATION_S, DEFAULT_SITES, DemoError, Timeline

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
                        help=f"measurement time of both copies of the network, at once "
                             f"(default {DEFAULT_DURATION_S:g}: 10 one-minute units, the least "
                             f"a latency verdict needs)")
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
                        help="testbed instance name prefix (namespaces ixm-INSTANCE-b-* and "
                             "ixm-INSTANCE-c-*; at most 14 characters; default demo)")


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


class _History:
    """The fault rules shown on a synthetic six-day history in a store of its own
    (:mod:`ixmeter.demo.history`): the live run is minutes long, the rules need days. Written
    in a thread while the probes measure; printed after the verdicts."""

    def __init__(self, opts: DemoOptions, out: Path) -> None:
        self.opts, self.out = opts, out
        self.text: str | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from inventory.loader import default_inventory, load
        from ixmeter.demo import history

        inventory = self.opts.inventory or default_inventory()
        inv = load(inventory)
        if not inv.fault_rules:
            return
        today = datetime.now(history.zone(inv)).date()  # the rules' calendar day
        self._thread = threading.Thread(target=self._run, args=(inventory, today), daemon=True,
                                        name="synthetic-history")
        self._thread.start()

    def _run(self, inventory: Path, today: date) -> None:
        from ixmeter.demo import history

        try:
            self.text = history.show(self.out / "synthetic", inventory, today)
        except Exception as exc:  # reported after the verdicts, the demo goes on
            self.error = exc

    def show(self) -> None:
        if self._thread is None:
            return
        self._thread.join()
        print("\nfault rules on a SYNTHETIC six-day history (the live run lasts minutes, the "
              "rules need days; docs/demo.md):", flush=True)
        print(self.text if self.error is None else f"failed: {self.error}", flush=True)


def run_demo(opts: DemoOptions) -> int:
    """Run the demo; 0 when the report was written (whatever the verdicts say)."""
    from ixmeter.demo import finish, runner
    from ixmeter.demo.procs import Children

    out = opts.out.resolve()
    started = time.monotonic()
    dashboard = Children()
    history = _History(opts, out)

    def on_plan(run: runner.Run, timeline: Timeline) -> None:
        history.start()
        if opts.dashboard:
            finish.start_dashboard(run, timeline, opts.port, dashboard)

    with _interruptible():
        try:
            try:
                measured = runner.measure_all(opts, out, *choose_mode(opts.mode), on_plan)
            except KeyboardInterrupt:
                print("demo: interrupted; every process, namespace and device is gone",
                      file=sys.stderr)
                return 130
            print("\nanalysing the window (current from current.db, baseline from "
                  "baseline.db; block bootstrap, 2,000 replicates) ...", flush=True)
            t0 = time.monotonic()
            try:
                analysis = finish.analyze(measured, out / "report")
            except KeyboardInterrupt:
                print("demo: interrupted during the analysis", file=sys.stderr)
                return 130
            print(f"analysis and report took {time.monotonic() - t0:.0f} s\n")
            print(finish.verdict_table(analysis.evaluation))
            for note in measured.notes + finish.demo_notes(analysis.evaluation):
                print(f"demo note: {note}")
            print(f"\nreport: {analysis.report_dir}/ ({', '.join(analysis.files[:3])} and "
                  f"{len(analysis.files) - 3} CSV files)")
            print(f"reproduce it: {analysis.command}")
            history.show()
            print(f"\nthe demo took {time.monotonic() - started:.0f} s", flush=True)
            if not opts.dashboard:
                return 0
            finish.wait_dashboard(dashboard, opts.port)
        finally:
            dashboard.stop_all()
            dashboard.close()
    return 0
