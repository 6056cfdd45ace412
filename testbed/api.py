"""Python API of the emulated carrier network, for tests, benchmarks and the demo.

    from testbed.api import Testbed
    with Testbed.up("inventory/hunan.yaml", profile="baseline", sites=["cs-yungu"]) as tb:
        tb.exec("cs-yungu-ct", ["ping", "-c", "3", tb.hosts["cs-yungu-cm"].v4])
        tb.set_profile("direct")

Every process started through it runs inside the host's network namespace
(``ip netns exec``); the testbed is never imported by product code.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from inventory.loader import default_inventory
from testbed import daemon, netns
from testbed.daemon import DEFAULT_INSTANCE, DEFAULT_SPIN_US, TestbedError
from testbed.plan import Host
from testbed.profiles import Profile, load_profile, parse_schedule


@dataclass(frozen=True, slots=True)
class HostInfo(Host):
    """One emulated host as a caller sees it: the plan's :class:`~testbed.plan.Host`, whose
    ``v4``/``v6`` raise a clear error where the host has no such address (instead of None)."""

    @property
    def v4(self) -> str:
        return self._first(4)

    @property
    def v6(self) -> str:
        return self._first(6)

    def _first(self, family: int) -> str:
        for a in self.addresses:
            if (":" in a) == (family == 6):
                return a
        raise TestbedError(f"host {self.name} has no IPv{family} address in the inventory")

    def address(self, family: int) -> str:
        """The host's IPv4 (``family=4``) or IPv6 (``6``) address."""
        return self.v4 if family == 4 else self.v6


def _profile_dict(profile: str | Path | Profile) -> dict[str, Any]:
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    return prof.model_dump(mode="json")


class Testbed:
    """A running testbed instance (see :meth:`up` and :meth:`attach`)."""

    __test__ = False  # not a pytest test class, even when imported into a test module

    def __init__(self, instance: str, state: dict[str, Any]) -> None:
        self.instance = instance
        self.mode: str = state.get("mode", "netns")
        self.hosts: dict[str, HostInfo] = {
            h["name"]: HostInfo(h["name"], h["namespace"], h["site"], h["carrier"], h["city"],
                                tuple(h["addresses"])) for h in state["hosts"]}
        self.state = state

    @classmethod
    def up(cls, inventory: str | Path | None = None, profile: str | Path | Profile = "baseline",
           *, sites: Sequence[str] = (), carriers: Sequence[str] = (),
           max_hosts: int | None = None, schedule: str | Sequence[tuple[float, str]] = (),
           instance: str = DEFAULT_INSTANCE, spin_us: float = DEFAULT_SPIN_US,
           realtime: bool = True, advance_us: float | None = None,
           kernel_stamps: bool = True, mode: str = "netns") -> Testbed:
        """Build the namespaces and start the emulator in the background. ``mode="netns"``
        needs root; ``mode="userns"`` runs everything inside a user + mount + network namespace
        of the caller (``unshare -Urnm``), where the kernel allows it, without root.
        ``kernel_stamps`` counts each packet's delay from the kernel's stamp of its arrival
        (a packet socket per host); off, from when the emulator read it, minus ``advance_us``
        (default 10, the calibrated median wake-up; 0 with kernel stamps)."""
        if mode == "netns":
            netns.require_privileges()
        elif mode != "userns":
            raise TestbedError(f"unknown mode {mode!r}", hint="netns or userns (see up_loopback)")
        sched = parse_schedule(schedule) if isinstance(schedule, str) else list(schedule)
        config = {
            "inventory": str(Path(inventory or default_inventory()).resolve()),
            "profile": _profile_dict(profile), "sites": list(sites), "carriers": list(carriers),
            "max_hosts": max_hosts, "spin_us": spin_us, "realtime": realtime,
            "advance_us": advance_us, "kernel_stamps": kernel_stamps, "mode": mode,
            "schedule": [(at, _profile_dict(name)) for at, name in sched],
        }
        return cls(instance, daemon.start(instance, config))

    @classmethod
    def up_loopback(cls, inventory: str | Path | None = None,
                    profile: str | Path | Profile = "baseline", *, sites: Sequence[str] = (),
                    max_hosts: int | None = None, instance: str = DEFAULT_INSTANCE,
                    listen_port: int = 18620) -> Testbed:
        """The unprivileged fallback: a UDP delay line on 127.0.0.1 (see testbed.delayline);
        send to :meth:`path_port` as a host, run reflectors on :meth:`reflector_port`."""
        from testbed.delayline import start_loopback

        return cls(instance, start_loopback(inventory, profile, sites=list(sites),
                                            max_hosts=max_hosts, instance=instance,
                                            listen_port=listen_port))

    def path_port(self, src: str, dst: str) -> int:
        """Loopback mode: the 127.0.0.1 UDP port that carries ``src`` -> ``dst``."""
        return int(self.state["path_ports"][f"{self.host(src).name}>{self.host(dst).name}"])

    def reflector_port(self, host: str) -> int:
        """Loopback mode: the 127.0.0.1 UDP port where ``host``'s reflector must listen."""
        self.host(host)
        return int(next(h["reflector_port"] for h in self.state["hosts"] if h["name"] == host))

    @classmethod
    def attach(cls, instance: str = DEFAULT_INSTANCE) -> Testbed:
        """The already running ``instance``."""
        state = daemon.read_state(instance)
        if state is None:
            raise TestbedError(f"testbed {instance!r} is not up",
                               hint="start it with 'ixmeter testbed up'")
        return cls(instance, state)

    def __enter__(self) -> Testbed:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.down()

    def down(self) -> None:
        """Stop the emulator and remove every namespace of this instance."""
        daemon.stop(self.instance)

    def host(self, name: str) -> HostInfo:
        try:
            return self.hosts[name]
        except KeyError:
            raise TestbedError(f"no host {name!r} in testbed {self.instance!r}",
                               hint=f"hosts: {', '.join(sorted(self.hosts))}") from None

    def wrap(self, host: str, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed so it runs inside ``host``'s namespace (unchanged in loopback
        mode, where every host is 127.0.0.1)."""
        ns = self.host(host).namespace
        if self.mode == "loopback":
            return list(argv)
        if self.mode == "userns":  # enter the daemon's user + mount namespaces first
            # --preserve-credentials: unshare -Ur denied setgroups in that namespace; our uid
            # maps to root there anyway.
            return ["nsenter", "-t", str(self.state["pid"]), "-U", "-m", "--preserve-credentials",
                    "ip", "netns", "exec", ns, *argv]
        return ["ip", "netns", "exec", ns, *argv]

    def exec(self, host: str, argv: Sequence[str], *, timeout: float | None = 60,
             check: bool = False, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in ``host`` and wait for it; output captured as text."""
        return subprocess.run(self.wrap(host, argv), capture_output=True, text=True,
                              timeout=timeout, check=check, input=input)

    def popen(self, host: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in ``host``; keyword arguments go to :class:`subprocess.Popen`."""
        return subprocess.Popen(self.wrap(host, argv), **kwargs)

    def python(self, host: str, code: str, *args: str,
               timeout: float | None = 60) -> subprocess.CompletedProcess[str]:
        """Run Python ``code`` (this interpreter, so the project is importable) in ``host``."""
        return self.exec(host, [sys.executable, "-c", code, *args], timeout=timeout)

    def python_popen(self, host: str, code: str, *args: str,
                     **kwargs: Any) -> subprocess.Popen[Any]:
        """Start Python ``code`` in ``host`` in the background."""
        return self.popen(host, [sys.executable, "-c", code, *args], **kwargs)

    def set_profile(self, profile: str | Path | Profile) -> str:
        """Switch the running emulator to another profile; returns its name."""
        reply = daemon.control(self.instance, {"op": "profile",
                                               "profile": _profile_dict(profile)})
        return str(reply["profile"])

    def status(self) -> dict[str, Any]:
        """Profile, switch history and packet counters of the running emulator."""
        if self.mode == "loopback":
            return {"ok": True, "mode": "loopback", "profile": self.state["profile"]}
        return daemon.control(self.instance, {"op": "status"})

    def paths(self) -> list[dict[str, Any]]:
        """Every directed path under the current profile: one-way delay, loss, hops."""
        return list(daemon.control(self.instance, {"op": "paths"})["paths"])

    def path(self, src: str, dst: str) -> dict[str, Any]:
        """One directed path of :meth:`paths`."""
        for p in self.paths():
            if p["src"] == src and p["dst"] == dst:
                return p
        raise TestbedError(f"no path {src} -> {dst} in testbed {self.instance!r}")
