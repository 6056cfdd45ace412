"""The measurement part of the demo: testbed, collector, reflectors and probes up, a baseline
phase on the detour profile, the switch to the direct profile, a current phase, then everything
stopped in order (probes drain their spools into the collector first) and removed.

Processes: the collector listens on a unix socket in the run folder; the probes reach it from
inside their network namespaces through :mod:`ixmeter.demo.bridge` (127.0.0.1:8650 in each
namespace); every reflector and probe runs in its host's namespace (``ip netns exec``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ixmeter.demo import probes as probe_setup
from ixmeter.demo.plan import MINUTE_NS, NS, DemoError, Timeline, clock, plan_timeline
from ixmeter.demo.procs import Children, wait_until

if TYPE_CHECKING:
    from testbed.api import Testbed

PROGRESS_TTY_S = 2.0  # the line is rewritten in place on a terminal
SETTLED_S = 90.0  # a minute's rollup no longer changes this long after it ended
PROGRESS_LOG_S = 30.0  # otherwise a new line this often
COLLECTOR_START_S = 60.0
DRAIN_S = 90.0
LOOPBACK_PORT = 18620  # the delay line's first port (testbed.delayline)


@dataclass
class Run:
    """Paths and settings of one demo run."""

    out: Path
    inventory: Path
    sites: list[str]
    duration_s: float
    instance: str = "demo"
    mode: str = "netns"
    log: TextIO = sys.stdout

    @property
    def db(self) -> Path:
        return self.out / "results.db"

    @property
    def rundir(self) -> Path:
        return self.out / "run"

    @property
    def socket(self) -> Path:
        return self.rundir / "collector.sock"

    def say(self, text: str) -> None:
        print(text, file=self.log, flush=True)


@dataclass
class Measured:
    """The outcome of the measurement part."""

    timeline: Timeline
    stored: dict[str, int]
    probe_exit: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def ixmeter_argv(*args: str) -> list[str]:
    """This interpreter running the ixmeter CLI (works inside namespaces and without PATH)."""
    return [sys.executable, "-m", "ixmeter.cli", *args]


def collector_ok(sock: Path) -> bool:
    """``GET /healthz`` over the unix socket."""
    import httpx

    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), timeout=2.0) as c:
            return c.get("http://collector/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def start_collector(run: Run, children: Children, keys: Path) -> None:
    argv = ixmeter_argv("collector", "serve", "--db", str(run.db), "--bind",
                        f"unix:{run.socket}", "--keys", str(keys),
                        "--inventory", str(run.inventory))
    child = children.start("collector", "collector", argv, run.rundir / "collector.log")
    if not wait_until(lambda: collector_ok(run.socket) or not child.alive(), COLLECTOR_START_S) \
            or not child.alive():
        raise DemoError(f"the collector did not start: {child.tail() or 'no output'}",
                        hint=f"see {child.log}")
    run.say(f"collector: SQLite store {run.db}, listening on unix:{run.socket}")


def start_reflectors(run: Run, tb: Testbed, children: Children) -> None:
    for name in sorted(tb.hosts):
        argv = ixmeter_argv("reflector", *probe_setup.reflector_args(tb, name))
        children.start(f"reflector {name}", "reflector", tb.wrap(name, argv),
                       run.rundir / "reflectors" / f"{name}.log")
    time.sleep(1.0)
    _check_alive(children, "reflector")
    run.say(f"reflectors: STAMP (RFC 8762) on {len(tb.hosts)} hosts")


def _check_alive(children: Children, group: str) -> None:
    dead = [c for c in children.group(group) if not c.alive()]
    if dead:
        raise DemoError(f"{dead[0].name} exited: {dead[0].tail() or 'no output'}",
                        hint=f"see {dead[0].log}")


class Progress:
    """Counts of stored results per phase, read from the store (rollups of each window), and
    the probes' spool depth from their heartbeats."""

    def __init__(self, run: Run, timeline: Timeline) -> None:
        self.run, self.timeline = run, timeline
        self._store: Any = None
        self._final: dict[str, tuple[int, int]] = {}  # phase -> (counted up to, count)

    def stored(self, now_ns: int | None = None) -> dict[str, int]:
        """Results stored per window. Minutes that ended over ``SETTLED_S`` before ``now_ns``
        no longer change (uploads lag by about a second) and are counted once; without
        ``now_ns`` everything is read again."""
        from analyzer.store import open_store

        if self._store is None:
            self._store = open_store(self.run.db)
        out = {}
        for phase, (a, b) in (("baseline", self.timeline.baseline),
                              ("current", self.timeline.current)):
            upto, count = self._final.get(phase, (a, 0)) if now_ns is not None else (a, 0)
            if now_ns is not None:
                settled = min(b, (now_ns - int(SETTLED_S * NS)) // MINUTE_NS * MINUTE_NS)
                if settled > upto:
                    count += self._count(upto, settled)
                    upto = settled
                    self._final[phase] = (upto, count)
            out[phase] = count + (self._count(upto, b) if upto < b else 0)
        return out

    def _count(self, a: int, b: int) -> int:
        from analyzer.store.base import Query

        return sum(r.sent + r.errors for r in self._store.read_rollups(Query(a, b)))

    def spool_depth(self) -> int | None:
        if self._store is None:
            return None
        depths = [h.spool_depth for h in self._store.probe_health() if h.spool_depth is not None]
        return sum(depths) if depths else None

    def line(self, now_ns: int, started_ns: int) -> str:
        t = self.timeline
        stored = self.stored(now_ns)
        depth = self.spool_depth()
        elapsed = (now_ns - started_ns) / NS
        total = (t.end_ns - started_ns) / NS
        spool = f", spools {depth}" if depth is not None else ""
        return (f"[{_mmss(elapsed)} / {_mmss(total)}] {t.phase(now_ns):<8}  stored: "
                f"baseline {stored['baseline']:,}, current {stored['current']:,}{spool}")

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def _mmss(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 60:d}:{s % 60:02d}"


def measure(run: Run, tb: Testbed, children: Children,
            switch: Callable[[], None]) -> Measured:
    """Plan the phases from now, show progress, switch the profile, stop and drain the probes."""
    started = time.time_ns()
    timeline = plan_timeline(started, run.duration_s)
    settle = timeline.settle
    run.say(f"baseline (detour profile) {clock(timeline.baseline[0])}-"
            f"{clock(timeline.baseline[1])} UTC; switch to the direct profile at "
            f"{clock(timeline.switch_ns)}; current {clock(timeline.current[0])}-"
            f"{clock(timeline.current[1])}"
            + (f"; {clock(settle[0])}-{clock(settle[1])} left out (settling)"
               if settle[1] > settle[0] else "; no settling interval (run too short)"))
    progress = Progress(run, timeline)
    tty = run.log.isatty()
    every_ns = int((PROGRESS_TTY_S if tty else PROGRESS_LOG_S) * NS)
    switched = False
    try:
        while (now := time.time_ns()) < timeline.end_ns:
            if not switched and now >= timeline.switch_ns:
                switch()
                switched = True
                _say_over(run, tty, f"{clock(now)} UTC: switched to the direct profile")
            _check_alive(children, "probe")
            line = progress.line(now, started)
            if tty:
                print("\r" + line.ljust(100), end="", file=run.log, flush=True)
            else:
                run.say(line)
            wake = min(now + every_ns, timeline.end_ns,
                       timeline.switch_ns if not switched else timeline.end_ns)
            time.sleep(max(0.05, (wake - time.time_ns()) / NS))
        _say_over(run, tty, progress.line(time.time_ns(), started))
        run.say("measurement over: stopping the probes; each drains its spool to the collector")
        codes = children.stop(children.group("probe"), signal.SIGTERM, DRAIN_S)
        children.stop(children.group("reflector"), signal.SIGTERM, 10.0)
        stored = progress.stored()
        left = probe_setup.spools_left(run, sorted(tb.hosts))
        run.say(f"stored: baseline {stored['baseline']:,}, current {stored['current']:,} "
                f"results; {left} left in the probes' spools")
    finally:
        progress.close()
    notes = [f"{left} results were still in the probes' spools at the end"] if left else []
    return Measured(timeline, stored, codes, notes)


def _say_over(run: Run, tty: bool, text: str) -> None:
    """A line that ends the in-place progress line on a terminal."""
    run.say(("\r" + text.ljust(100)) if tty else text)


def write_summary(run: Run, measured: Measured, extra: dict[str, Any]) -> None:
    t = measured.timeline
    doc = {"mode": run.mode, "sites": run.sites, "inventory": str(run.inventory),
           "db": str(run.db), "baseline": list(t.baseline), "switch_ns": t.switch_ns,
           "current": list(t.current), "stored": measured.stored,
           "probe_exit": measured.probe_exit, **extra}
    (run.out / "demo.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def prepare_out(out: Path) -> None:
    """Create ``out`` and remove what a previous demo run left there."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    for name in ("results.db", "results.db-wal", "results.db-shm", "demo.json", "inventory.yaml"):
        (out / name).unlink(missing_ok=True)
    for name in ("run", "report"):
        shutil.rmtree(out / name, ignore_errors=True)
    (out / "run").mkdir()
    os.chmod(out / "run", 0o700)


@dataclass
class Outcome:
    """What the analysis needs from the measurement part."""

    db: Path
    inventory: Path
    timeline: Timeline
    notes: list[str]


def _bring_up(run: Run) -> Testbed:
    from testbed.api import Testbed

    try:
        if run.mode == "netns":
            tb = Testbed.up(run.inventory, profile="baseline", sites=run.sites,
                            instance=run.instance)
        else:
            tb = Testbed.up_loopback(run.inventory, profile="baseline", sites=run.sites,
                                     instance=run.instance, listen_port=LOOPBACK_PORT)
    except KeyboardInterrupt:  # Ctrl-C while the daemon starts: remove the half-built instance
        from testbed import daemon

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        daemon.stop(run.instance)
        raise
    run.say(f"testbed: {len(tb.hosts)} hosts ({', '.join(sorted(tb.hosts))}), "
            f"mode {tb.mode}, profile baseline (inter-carrier traffic detours via a hub)")
    return tb


def _switcher(run: Run, tb: Testbed) -> Callable[[], None]:
    """Switch the running testbed to the direct profile. Loopback mode has no runtime switch:
    its delay line is restarted on the same ports with the direct profile (a gap of about a
    second, inside the settling interval)."""
    def switch() -> None:
        if tb.mode != "loopback":
            tb.set_profile("direct")
            return
        from testbed.api import Testbed

        tb.down()
        new = Testbed.up_loopback(run.inventory, profile="direct", sites=run.sites,
                                  instance=run.instance, listen_port=LOOPBACK_PORT)
        tb.state = new.state
    return switch


def measure_all(opts: Any, out: Path, mode: str, why: str) -> Outcome:
    """Steps 1-4 of the demo up to the stored results; everything started is stopped and
    removed before this returns or raises (KeyboardInterrupt included)."""
    from inventory.loader import default_inventory, load
    from ixmeter.demo.plan import demo_inventory, read_inventory, write_inventory

    prepare_out(out)
    run = Run(out=out, inventory=out / "inventory.yaml", sites=list(opts.sites),
              duration_s=opts.duration_s, instance=opts.instance, mode=mode)
    if mode == "loopback":
        run.say(f"demo: UNPRIVILEGED LOOPBACK MODE ({why}): the testbed's UDP delay line on "
                "127.0.0.1, STAMP only, no routes; the ICMP latency and loss targets get no data")
    source = opts.inventory or default_inventory()
    write_inventory(demo_inventory(read_inventory(source), run.sites), run.inventory)
    inv = load(run.inventory)
    run.say(f"inventory: {source} cut to sites {', '.join(run.sites)} "
            f"({len(inv.probes)} probes) -> {run.inventory}")
    children = Children()
    tb: Testbed | None = None
    notes: list[str] = []
    try:
        tb = _bring_up(run)
        keys = probe_setup.make_keys(sorted(tb.hosts), run.rundir)
        start_collector(run, children, keys)
        start_reflectors(run, tb, children)
        url = probe_setup.start_bridge(run, tb, children)
        probe_setup.start_probes(run, tb, children, url)
        measured = measure(run, tb, children, _switcher(run, tb))
        notes += measured.notes
        bad = {k: v for k, v in measured.probe_exit.items() if v not in (0, -signal.SIGTERM)}
        if bad:
            notes.append(f"probes that did not exit cleanly: {bad}")
        write_summary(run, measured, {"mode": tb.mode, "testbed_pid": tb.state.get("pid"),
                                      "pids": {c.name: c.proc.pid for c in children.children}})
    finally:
        _teardown(run, children, tb)
    return Outcome(run.db, run.inventory, measured.timeline, notes)


def _teardown(run: Run, children: Children, tb: Testbed | None) -> None:
    """Stop every child (probes, reflectors, collector) and take the testbed down; a Ctrl-C
    during this is ignored so it always finishes."""
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        if any(c.alive() for c in children.children):
            run.say("stopping probes, reflectors and the collector ...")
        children.stop_all()
        children.close()
        if tb is not None:
            tb.down()
            gone = "delay line stopped" if tb.mode == "loopback" else \
                "namespaces and devices removed"
            run.say(f"testbed {run.instance} down: {gone}")
        run.socket.unlink(missing_ok=True)
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
