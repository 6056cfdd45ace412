"""The measurement part of the demo: two copies of the emulated network measured at the same
time, each into its own store, then everything stopped in order and removed.

- the **baseline** copy runs the ``baseline`` profile (inter-carrier traffic detours via the
  Wuhan or Guangzhou hub), its collector writes ``baseline.db``;
- the **current** copy runs the ``direct`` profile (traffic meets at the Changsha exchange
  point), its collector writes ``current.db``.

Each copy is a testbed instance of its own (``<instance>-b``, ``<instance>-c``) with a STAMP
reflector and a probe agent in every host's namespace, a collector on a unix socket and a
bridge (:mod:`ixmeter.demo.bridge`) from 127.0.0.1:8650 in each namespace to that socket. The
probes of both copies start together and stop together (:func:`~ixmeter.demo.plan.plan_timeline`),
so the two windows are the same minutes: the analysis reads the current window from one store and
the baseline window from the other (``--baseline-db``).
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
from ixmeter.demo.network import Network, networks
from ixmeter.demo.plan import NS, DemoError, Timeline, clock, plan_timeline
from ixmeter.demo.procs import Children, ixmeter_argv, wait_until
from ixmeter.demo.progress import Progress

if TYPE_CHECKING:
    from testbed.api import Testbed

PROGRESS_TTY_S = 2.0  # the line is rewritten in place on a terminal
PROGRESS_LOG_S = 30.0  # otherwise a new line this often
COLLECTOR_START_S = 60.0
DRAIN_S = 90.0
LOOPBACK_PORT = 18620  # the delay line's first port (testbed.delayline), one block per copy
LOOPBACK_PORTS_PER_COPY = 500


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
    networks: list[Network] = field(default_factory=list)

    def say(self, text: str) -> None:
        print(text, file=self.log, flush=True)


@dataclass
class Measured:
    """The outcome of the measurement part."""

    timeline: Timeline
    stored: dict[str, int]
    probe_exit: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def collector_ok(sock: Path) -> bool:
    """``GET /healthz`` over the unix socket."""
    import httpx

    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), timeout=2.0) as c:
            return c.get("http://collector/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def start_collector(run: Run, net: Network, children: Children, keys: Path) -> None:
    argv = ixmeter_argv("collector", "serve", "--db", str(net.db), "--bind",
                        f"unix:{net.socket}", "--keys", str(keys),
                        "--inventory", str(run.inventory))
    child = children.start(f"collector {net.role}", f"collector-{net.group}", argv,
                           net.rundir / "collector.log")
    if not wait_until(lambda: collector_ok(net.socket) or not child.alive(), COLLECTOR_START_S) \
            or not child.alive():
        raise DemoError(f"the {net.role} collector did not start: "
                        f"{child.tail() or 'no output'}", hint=f"see {child.log}")


def start_reflectors(run: Run, net: Network, children: Children) -> None:
    tb = _tb(net)
    for name in sorted(tb.hosts):
        argv = ixmeter_argv("reflector", *probe_setup.reflector_args(tb, name))
        children.start(f"reflector {net.role} {name}", f"reflector-{net.group}",
                       tb.wrap(name, argv), net.rundir / "reflectors" / f"{name}.log")


def check_alive(children: Children, group: str) -> None:
    dead = [c for c in children.children if c.group.startswith(group) and not c.alive()]
    if dead:
        raise DemoError(f"{dead[0].name} exited: {dead[0].tail() or 'no output'}",
                        hint=f"see {dead[0].log}")


def _tb(net: Network) -> Testbed:
    assert net.tb is not None
    return net.tb


def say_plan(run: Run, t: Timeline) -> None:
    a, b = t.window
    first, last = t.edges_s()
    run.say(f"both networks measured {clock(t.start_ns)}-{clock(t.stop_ns)} UTC "
            f"({(t.stop_ns - t.start_ns) / NS:.0f} s); window {clock(a)}-{clock(b)} UTC: "
            f"{t.minutes} one-minute units, the first holding {first:.0f} s and the last "
            f"{last:.0f} s of data")


def measure(run: Run, children: Children, timeline: Timeline,
            start_probes: Callable[[], None]) -> Measured:
    """Start the probes of both copies at the planned time, show progress until the stop
    time, then stop the probes (each drains its spool) and the reflectors."""
    while (wait := timeline.start_ns - time.time_ns()) > 0:
        time.sleep(wait / NS)
    start_probes()
    progress = Progress(run.networks, timeline, run.inventory)
    tty = run.log.isatty()
    every_ns = int((PROGRESS_TTY_S if tty else PROGRESS_LOG_S) * NS)
    try:
        while (now := time.time_ns()) < timeline.stop_ns:
            check_alive(children, "probe")
            line = progress.line(now)
            if tty:
                print("\r" + line.ljust(110), end="", file=run.log, flush=True)
            else:
                run.say(line)
            time.sleep(max(0.05, (min(now + every_ns, timeline.stop_ns) - time.time_ns()) / NS))
        _say_over(run, tty, progress.line(time.time_ns()))
        run.say("measurement over: stopping the probes; each drains its spool to the collector")
        probes = [c for c in children.children if c.group.startswith("probe-")]
        codes = children.stop(probes, signal.SIGTERM, DRAIN_S)
        children.stop([c for c in children.children if c.group.startswith("reflector-")],
                      signal.SIGTERM, 10.0)
        stored = progress.stored()
        left = sum(probe_setup.spools_left(net.rundir, sorted(_tb(net).hosts))
                   for net in run.networks)
        run.say("stored: " + ", ".join(f"{k} {v:,}" for k, v in stored.items()) +
                f" results; {left} left in the probes' spools")
    finally:
        progress.close()
    notes = [f"{left} results were still in the probes' spools at the end"] if left else []
    return Measured(timeline, stored, codes, notes)


def _say_over(run: Run, tty: bool, text: str) -> None:
    """A line that ends the in-place progress line on a terminal."""
    run.say(("\r" + text.ljust(110)) if tty else text)


def write_summary(run: Run, measured: Measured, extra: dict[str, Any]) -> None:
    t = measured.timeline
    doc = {"mode": run.mode, "sites": run.sites, "inventory": str(run.inventory),
           "db": {n.role: str(n.db) for n in run.networks}, "window": list(t.window),
           "start_ns": t.start_ns, "stop_ns": t.stop_ns, "stored": measured.stored,
           "probe_exit": measured.probe_exit, **extra}
    (run.out / "demo.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def prepare_out(out: Path) -> None:
    """Create ``out`` and remove what a previous demo run left there."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    for stem in ("results", "baseline", "current"):
        for suffix in (".db", ".db-wal", ".db-shm"):
            (out / f"{stem}{suffix}").unlink(missing_ok=True)
    for name in ("demo.json", "inventory.yaml"):
        (out / name).unlink(missing_ok=True)
    for name in ("run", "report"):
        shutil.rmtree(out / name, ignore_errors=True)
    (out / "run").mkdir()
    os.chmod(out / "run", 0o700)


@dataclass
class Outcome:
    """What the analysis needs from the measurement part."""

    baseline_db: Path
    current_db: Path
    inventory: Path
    timeline: Timeline
    notes: list[str]


def _bring_up(run: Run, net: Network) -> None:
    from testbed.api import Testbed

    try:
        if run.mode == "netns":
            net.tb = Testbed.up(run.inventory, profile=net.profile, sites=run.sites,
                                instance=net.instance)
        else:
            port = LOOPBACK_PORT + net.index * LOOPBACK_PORTS_PER_COPY
            net.tb = Testbed.up_loopback(run.inventory, profile=net.profile, sites=run.sites,
                                         instance=net.instance, listen_port=port)
    except KeyboardInterrupt:  # Ctrl-C while the daemon starts: remove the half-built instance
        from testbed import daemon

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        daemon.stop(net.instance)
        raise


def _set_up(run: Run, net: Network, children: Children) -> None:
    """Testbed, keys, collector, reflectors and bridge of one copy (probes start later)."""
    _bring_up(run, net)
    tb = _tb(net)
    net.rundir.mkdir(parents=True, exist_ok=True)
    keys = probe_setup.make_keys(sorted(tb.hosts), net.rundir)
    start_collector(run, net, children, keys)
    start_reflectors(run, net, children)
    probe_setup.start_bridge(net, tb, children)
    what = ("inter-carrier traffic detours via the Wuhan or Guangzhou hub" if
            net.profile == "baseline" else "inter-carrier traffic meets at the Changsha point")
    run.say(f"{net.role} network: testbed {net.instance} ({len(tb.hosts)} hosts, mode "
            f"{tb.mode}, profile {net.profile}: {what}); collector -> {net.db}; "
            f"STAMP reflectors on every host")


def measure_all(opts: Any, out: Path, mode: str, why: str,
                on_plan: Callable[[Run, Timeline], None] | None = None) -> Outcome:
    """Steps 1-3 of the demo up to the stored results; everything started is stopped and
    removed before this returns or raises (KeyboardInterrupt included). ``on_plan`` is called
    once the window is known, before the probes start (the demo starts its dashboard there)."""
    from inventory.loader import default_inventory, load
    from ixmeter.demo.plan import demo_inventory, read_inventory, write_inventory

    prepare_out(out)
    run = Run(out=out, inventory=out / "inventory.yaml", sites=list(opts.sites),
              duration_s=opts.duration_s, instance=opts.instance, mode=mode,
              networks=networks(out, opts.instance))
    if mode == "loopback":
        run.say(f"demo: UNPRIVILEGED LOOPBACK MODE ({why}): the testbed's UDP delay line on "
                "127.0.0.1, STAMP only, no routes; the ICMP latency and loss targets get no data")
    source = opts.inventory or default_inventory()
    write_inventory(demo_inventory(read_inventory(source), run.sites), run.inventory)
    inv = load(run.inventory)
    run.say(f"inventory: {source} cut to sites {', '.join(run.sites)} "
            f"({len(inv.probes)} probes, one clock domain) -> {run.inventory}")
    children = Children()
    try:
        for net in run.networks:
            _set_up(run, net, children)
        check_alive(children, "reflector")
        timeline = plan_timeline(time.time_ns(), run.duration_s)
        say_plan(run, timeline)
        if on_plan is not None:
            on_plan(run, timeline)
        measured = measure(run, children, timeline, lambda: _start_probes(run, children))
        bad = {k: v for k, v in measured.probe_exit.items() if v not in (0, -signal.SIGTERM)}
        if bad:
            measured.notes.append(f"probes that did not exit cleanly: {bad}")
        write_summary(run, measured, {
            "testbed_pids": [n.tb.state.get("pid") for n in run.networks if n.tb],
            "pids": {c.name: c.proc.pid for c in children.children}})
    finally:
        _teardown(run, children)
    base, cur = run.networks
    return Outcome(base.db, cur.db, run.inventory, measured.timeline, measured.notes)


def _start_probes(run: Run, children: Children) -> None:
    for net in run.networks:
        probe_setup.start_probes(run.inventory, net, _tb(net), children)
    time.sleep(2.0)
    check_alive(children, "probe")
    methods = "STAMP" if run.mode == "loopback" else "ICMP, STAMP, traceroute"
    run.say(f"probes: {sum(len(_tb(n).hosts) for n in run.networks)} agents ({methods}) "
            "started in both networks, uploading to their collectors")


def _teardown(run: Run, children: Children) -> None:
    """Stop every child (probes, reflectors, bridges, collectors) and take both
    testbeds down; a Ctrl-C during this is ignored so it always finishes."""
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        if any(c.alive() for c in children.children):
            run.say("stopping probes, reflectors, bridges and collectors ...")
        children.stop_all()
        children.close()
        for net in run.networks:
            if net.tb is not None:
                net.tb.down()
                gone = "delay line stopped" if net.tb.mode == "loopback" else \
                    "namespaces and devices removed"
                run.say(f"testbed {net.instance} down: {gone}")
            net.socket.unlink(missing_ok=True)
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
