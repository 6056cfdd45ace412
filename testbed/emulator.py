"""The link emulator daemon: ``python -m testbed.emulator RUNDIR``.

Builds one namespace per host, joins each to this process by a TUN device, then forwards packets
with the :class:`~testbed.forwarder.Forwarder`. Release timing follows the measurements in
``testbed-timing.md``: wait (in trio) on an epoll set holding every TUN fd and one CLOCK_MONOTONIC
timerfd armed ``spin`` before the next absolute deadline, then busy-wait the last stretch while
still reading arriving packets. A unix control socket (``ctl.sock``, one JSON line per request)
reports status and switches profile at run time; a schedule switches it at given times.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from inventory.loader import load
from inventory.schema import Inventory
from ixmeter.core.timestamping import rx_timestamp_ns
from testbed import netns
from testbed.daemon import DEFAULT_SPIN_US, run_main
from testbed.forwarder import LATENESS_SAMPLES, Forwarder, summary_us
from testbed.plan import Host, PathPlan, plan_paths, select_hosts
from testbed.profiles import Profile
from testbed.timerfd import TimerFd

READ_MAX = 65535
READ_ADVANCE_US = 10.0  # median TUN wake-up measured in 2026 (docs/testbed.md): read mode only
SPIN_SHARE = 0.4  # busy-wait at most 40 % of one core on average
SPIN_BURST_NS = 50_000_000
MIN_SPIN_NS = 50_000  # what a nearly empty spin budget still allows
SOL_PACKET, PACKET_STATISTICS = 263, 6  # linux/socket.h, linux/if_packet.h
STAMP_WINDOW_NS = 1_000_000_000  # a kernel stamp older than this (or in the future): a clock step


class Engine:
    """The data plane: TUN fds, a timerfd and a wake-up pipe in one epoll set, serviced by one
    dedicated thread blocked in ``epoll_wait`` (a trio task woken through trio's own loop adds
    ~100 us per release, testbed-timing.md). The trio thread hands it work with :meth:`call`."""

    def __init__(self, fwd: Forwarder, fds: Sequence[int], spin_ns: int,
                 taps: Sequence[socket.socket] = ()) -> None:
        self.fwd = fwd
        self.fds = list(fds)
        self.spin_ns = spin_ns
        self.timer = TimerFd()
        self.ep = select.epoll()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # With taps, packets are read from them, stamped by the kernel on arrival; the TUN
        # fds are only written to. Without, they are read from the TUN fds and stamped on read.
        self.taps = {t.fileno(): t for t in taps}
        sources = list(self.taps) if taps else self.fds
        for fd in (*sources, self.timer.fd, self.wake_r):
            self.ep.register(fd, select.EPOLLIN)
        self.index = {fd: i for i, fd in enumerate(sources)}
        self.arrival = "kernel timestamp (packet socket)" if taps else "read time (TUN)"
        self.stamp_fallbacks = 0
        self.read_wait_ns: deque[int] = deque(maxlen=LATENESS_SAMPLES)
        self.write_errors = 0
        self.calls: deque[Callable[[], None]] = deque()
        self.stopping = False
        self.priority = "default"
        self._budget_ns, self._budget_at = SPIN_BURST_NS, time.monotonic_ns()

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the data-plane thread at its next wake-up (thread-safe)."""
        self.calls.append(fn)
        with contextlib.suppress(BlockingIOError):
            os.write(self.wake_w, b"x")

    def stop(self) -> None:
        self.stopping = True
        self.call(lambda: None)

    def run_blocking(self, realtime: bool = True) -> None:
        """The data-plane loop; returns after :meth:`stop`. This thread gets the higher
        real-time priority, so planning in the trio thread never holds up a release."""
        self.priority = raise_priority(realtime)
        while not self.stopping:
            self.drain(self.ep.poll(-1))
            self.release()

    def drain(self, events: list[tuple[int, int]] | None = None) -> None:
        """Read every packet waiting on any packet socket or TUN device; clear the timer if it
        fired; run queued calls."""
        for fd, _ev in self.ep.poll(0) if events is None else events:
            if fd == self.timer.fd:
                self.timer.clear()
            elif fd == self.wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 4096)
                while self.calls:
                    self.calls.popleft()()
            elif fd in self.taps:
                self._read_tap(fd)
            else:
                self._read(fd)

    def _read_tap(self, fd: int) -> None:
        """Read a packet socket dry; each packet's delay counts from its kernel timestamp
        (CLOCK_REALTIME, mapped to CLOCK_MONOTONIC with an offset taken now). A missing or
        implausible stamp (a clock step) falls back to the read time and is counted."""
        src, sock = self.index[fd], self.taps[fd]
        offset = realtime_offset_ns()
        while True:
            try:
                pkt, anc, _flags, _addr = sock.recvmsg(READ_MAX, 64)
            except (BlockingIOError, InterruptedError):
                return
            now = time.monotonic_ns()
            stamp = rx_timestamp_ns(anc)
            at = now if stamp is None else stamp - offset
            self.read_wait_ns.append(now - at)
            if not now - STAMP_WINDOW_NS <= at <= now:
                self.stamp_fallbacks += 1
                at = now
            self._receive(src, pkt, at)

    def _read(self, fd: int) -> None:
        src = self.index[fd]
        while True:
            try:
                pkt = os.read(fd, READ_MAX)
            except (BlockingIOError, InterruptedError):
                return
            self._receive(src, pkt, time.monotonic_ns())

    def _receive(self, src: int, pkt: bytes, at_ns: int) -> None:
        try:
            self.fwd.receive(src, pkt, at_ns)
        except Exception:  # noqa: BLE001 - one odd packet must not stop the network
            self.fwd.count["errors"] += 1

    def release(self) -> None:
        """Send every packet due now, spinning through the last ``spin_ns`` of each wait;
        arm the timer for the next deadline further away."""
        while (deadline := self.fwd.next_deadline()) is not None:
            now = time.monotonic_ns()
            spin = self._spin_for(now)
            if deadline - now > spin:
                if self.timer.armed_ns != deadline - spin:
                    self.timer.arm(deadline - spin)
                return
            start = now
            while now < deadline:
                self.drain()
                deadline = self.fwd.next_deadline() or deadline
                now = time.monotonic_ns()
            self._budget_ns -= now - start
            for dst, pkt in self.fwd.pop_due(now):
                try:
                    os.write(self.fds[dst], pkt)
                except OSError:
                    self.write_errors += 1
        self.timer.disarm()

    def _spin_for(self, now: int) -> int:
        """How long to busy-wait before the next release. Token bucket: at most
        ``SPIN_SHARE`` of the time on average (burst ``SPIN_BURST_NS``), so a flood cannot make
        this real-time thread take a whole core (testbed-timing.md: above ~1.3 busy cores the VM
        stalls). When the bucket runs low the spin shrinks to ``MIN_SPIN_NS`` before it stops,
        and releases fall back to the plain timerfd (~80 us median error)."""
        self._budget_ns = min(SPIN_BURST_NS,
                              self._budget_ns + int((now - self._budget_at) * SPIN_SHARE))
        self._budget_at = now
        for spin in (self.spin_ns, min(self.spin_ns, MIN_SPIN_NS)):
            if self._budget_ns > spin:
                return spin
        return 0

    def close(self) -> None:
        self.ep.close()
        self.timer.close()
        os.close(self.wake_r)
        os.close(self.wake_w)


def realtime_offset_ns(tries: int = 3) -> int:
    """CLOCK_REALTIME - CLOCK_MONOTONIC, read between two monotonic reads; of ``tries``, the
    tightest bracket wins, so a preemption between the reads does not skew the offset."""
    best = None
    for _ in range(tries):
        a = time.monotonic_ns()
        r = time.clock_gettime_ns(time.CLOCK_REALTIME)
        b = time.monotonic_ns()
        if best is None or b - a < best[0]:
            best = (b - a, r - (a + b) // 2)
    assert best is not None
    return best[1]


class Daemon:
    """One running testbed instance: hosts, engine, control socket, schedule."""

    def __init__(self, rundir: Path, cfg: dict[str, Any]) -> None:
        self.rundir = rundir
        self.cfg = cfg
        self.inv: Inventory = load(cfg["inventory"])
        self.hosts: list[Host] = select_hosts(
            self.inv, cfg["instance"], sites=cfg.get("sites") or (),
            carriers=cfg.get("carriers") or (), max_hosts=cfg.get("max_hosts"))
        self.profile = Profile.model_validate(cfg["profile"])
        self.paths: dict[tuple[str, str], PathPlan] = {}
        self.history: list[dict[str, Any]] = []
        self.fds: list[int] = []
        self.taps: list[socket.socket] = []
        self.tap_drops = 0
        self.started = time.monotonic()

    @property
    def mode(self) -> str:
        return str(self.cfg.get("mode", "netns"))

    def build(self) -> Engine:
        if self.mode == "userns":
            netns.private_netns_dir()
        netns.delete_namespaces(f"ixm-{self.cfg['instance']}-")
        for host in self.hosts:
            fd, name = netns.open_tun()
            self.fds.append(fd)
            netns.build_host(host, name)
        self.taps = self._open_taps()
        self.paths = plan_paths(self.inv, self.hosts, self.profile)
        advance = self.cfg.get("advance_us")
        if advance is None:  # stamped on read: count from the calibrated median wake-up before
            advance = 0 if self.taps else READ_ADVANCE_US
        fwd = Forwarder(self.hosts, self.paths, self.profile, advance_ns=int(advance * 1000))
        self._log_switch("start")
        spin_ns = int(self.cfg.get("spin_us", DEFAULT_SPIN_US) * 1000)
        return Engine(fwd, self.fds, spin_ns, self.taps)

    def _open_taps(self) -> list[socket.socket]:
        """Kernel-stamped arrival (:func:`testbed.netns.open_tap`) on every host, or none: if
        one cannot be opened the whole run reads its TUN devices, and says why."""
        if not self.cfg.get("kernel_stamps", True):
            return []
        taps: list[socket.socket] = []
        try:
            for host in self.hosts:
                taps.append(netns.open_tap(host.namespace))
        except (OSError, subprocess.CalledProcessError) as exc:
            for tap in taps:
                tap.close()
            print(f"testbed {self.cfg['instance']}: no kernel arrival stamps ({exc}); packets "
                  "are stamped when read", flush=True)
            return []
        return taps

    def set_profile(self, engine: Engine, profile: Profile, why: str) -> None:
        self.paths = plan_paths(self.inv, self.hosts, profile)
        table = engine.fwd.build_table(self.paths, profile)
        engine.call(lambda: engine.fwd.install(table, profile))
        self.profile = profile
        self._log_switch(why)

    def _log_switch(self, why: str) -> None:
        self.history.append({"profile": self.profile.name, "why": why, "utc": time.time(),
                             "after_s": round(time.monotonic() - self.started, 6)})

    def status(self, engine: Engine) -> dict[str, Any]:
        stats = engine.fwd.statistics()
        return {"ok": True, "pid": os.getpid(), "profile": self.profile.name,
                "history": self.history, "mode": self.mode, "priority": engine.priority,
                "uptime_s": round(time.monotonic() - self.started, 3),
                "arrival": engine.arrival, "advance_us": engine.fwd.advance_ns / 1000,
                "stamp_fallbacks": engine.stamp_fallbacks, "tap_drops": self._tap_drops(),
                "read_wait_us": summary_us(engine.read_wait_ns),
                "stats": {**{k: getattr(stats, k) for k in stats.__slots__},
                          "write_errors": engine.write_errors},
                "release_late_us": engine.fwd.lateness_us()}

    def _tap_drops(self) -> int:
        """Packets the kernel dropped because a packet socket's buffer was full (loss the
        profile did not ask for; PACKET_STATISTICS, which resets on read, so summed here)."""
        for tap in self.taps:
            with contextlib.suppress(OSError):
                _packets, drops = struct.unpack("II", tap.getsockopt(SOL_PACKET,
                                                                     PACKET_STATISTICS, 8))
                self.tap_drops += drops
        return self.tap_drops

    def path_table(self) -> list[dict[str, Any]]:
        return [{"src": p.src, "dst": p.dst, "one_way_ms": p.one_way_ms,
                 "loss": p.direction.loss.rate, "burst": p.direction.loss.burst,
                 "hops": [{"name": h.name, "v4": h.v4, "v6": h.v6} for h in p.hops],
                 "expiry_ms": list(p.expiry_ms)} for p in self.paths.values()]

    def handle(self, engine: Engine, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "status":
            return self.status(engine)
        if op == "paths":
            return {"ok": True, "profile": self.profile.name, "paths": self.path_table()}
        if op == "profile":
            self.set_profile(engine, Profile.model_validate(req["profile"]), "control")
            return {"ok": True, "profile": self.profile.name}
        return {"ok": False, "error": f"unknown op {op!r}"}

    async def serve_control(self, engine: Engine, task_status: Any) -> None:
        path = self.rundir / "ctl.sock"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(str(path))
        sock.listen(8)
        task_status.started()

        async def one(stream: trio.SocketStream) -> None:
            async with stream:
                data = b""
                with trio.move_on_after(5):
                    while not data.endswith(b"\n"):
                        chunk = await stream.receive_some(65536)
                        if not chunk:
                            break
                        data += chunk
                try:
                    reply = self.handle(engine, json.loads(data or b"{}"))
                except Exception as exc:  # noqa: BLE001 - report any bad request to the client
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                await stream.send_all(json.dumps(reply).encode() + b"\n")

        await trio.serve_listeners(one, [trio.SocketListener(sock)])

    async def run_schedule(self, engine: Engine) -> None:
        for at_s, prof in self.cfg.get("schedule") or []:
            await trio.sleep_until(trio.current_time() + max(0.0, self.started + at_s
                                                             - time.monotonic()))
            self.set_profile(engine, Profile.model_validate(prof), f"schedule@{at_s}s")

    def write_state(self, ready: bool) -> None:
        state = {"instance": self.cfg["instance"], "pid": os.getpid(), "mode": self.mode,
                 "inventory": self.cfg["inventory"], "ready": ready,
                 "hosts": [{"name": h.name, "namespace": h.namespace, "site": h.site,
                            "carrier": h.carrier, "city": h.city,
                            "addresses": list(h.addresses)} for h in self.hosts]}
        tmp = self.rundir / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.rundir / "state.json")

    def teardown(self) -> None:
        for tap in self.taps:
            tap.close()
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        netns.delete_namespaces(f"ixm-{self.cfg['instance']}-")
        with contextlib.suppress(FileNotFoundError):
            (self.rundir / "ctl.sock").unlink()


async def _stop_on_cancel(engine: Engine) -> None:
    """Whatever ends the nursery (a signal, a crashed task) also ends the data-plane thread."""
    try:
        await trio.sleep_forever()
    finally:
        engine.stop()


def raise_priority(realtime: bool, level: int = 10) -> str:
    """Ask for SCHED_FIFO (priority ``level``) for the calling thread so releases are not queued
    behind other processes on a busy machine; the kernel's RT throttling (sched_rt_runtime_us)
    still leaves others 5 %. Falls back to nice -10, then to nothing; returns what was
    obtained."""
    if realtime:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(level))
            return f"SCHED_FIFO {level}"
    with contextlib.suppress(OSError):
        os.nice(-10)
        return "nice -10"
    return "default"


async def _main(rundir: Path) -> None:
    (rundir / "pid").write_text(str(os.getpid()))
    cfg = json.loads((rundir / "config.json").read_text())
    daemon = Daemon(rundir, cfg)
    try:
        engine = daemon.build()
        # The trio thread runs real-time too, one level below the data plane: a thread holding
        # the GIL must not be descheduled by other processes while the data plane waits for it.
        raise_priority(bool(cfg.get("realtime", True)), level=5)
        sys.setswitchinterval(0.0001)  # the data-plane thread waits at most 0.1 ms for the GIL
        gc.freeze()
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(daemon.serve_control, engine)
                nursery.start_soon(trio.to_thread.run_sync, engine.run_blocking,
                                   bool(cfg.get("realtime", True)))
                nursery.start_soon(daemon.run_schedule, engine)
                daemon.write_state(ready=True)
                print(f"testbed {cfg['instance']}: {len(daemon.hosts)} hosts up", flush=True)
                nursery.start_soon(_stop_on_cancel, engine)
                async for _sig in signals:
                    nursery.cancel_scope.cancel()
                    break
    finally:
        daemon.teardown()
        print(f"testbed {cfg['instance']}: down", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("testbed.emulator", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
