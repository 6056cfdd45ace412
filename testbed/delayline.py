"""Loopback mode: the unprivileged fallback, a user-space UDP delay line on 127.0.0.1.

Without root there are no namespaces or TUN devices, so every host shares 127.0.0.1 and paths are
told apart by port: a sender acting as host ``i`` sends to ``port(i, j) = base + i*N + j``; the
delay line holds each datagram for the i -> j path's delay (same profiles, loss and jitter models
as the namespace emulator, no routes or TTL), then forwards it to host ``j``'s reflector at
``base + N*N + j``; the reflector's answer comes back through the j -> i path. Enough for STAMP
(RFC 8762) and any UDP request/response probe. Timing uses trio's sleep (about 1 ms grain, see
testbed-timing.md), so it is a functional fallback, not an accuracy reference.

    python -m testbed.delayline RUNDIR      # started by 'ixmeter testbed up --mode loopback'
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import trio

from inventory.loader import default_inventory, load
from testbed import daemon
from testbed.impair import PathState
from testbed.plan import Host, path_seed, plan_paths, select_hosts
from testbed.profiles import Profile, load_profile, parse_schedule

LOOPBACK = "127.0.0.1"


def ports(n: int, base: int) -> tuple[dict[tuple[int, int], int], list[int]]:
    """(path ports keyed by (src, dst) index, reflector port of each host)."""
    paths = {(i, j): base + i * n + j for i in range(n) for j in range(n) if i != j}
    return paths, [base + n * n + j for j in range(n)]


class DelayLine:
    """Listening sockets per directed path, upstream sockets per (path, client)."""

    def __init__(self, hosts: list[Host], states: dict[tuple[int, int], PathState],
                 base: int) -> None:
        self.hosts = hosts
        self.states = states
        self.path_ports, self.reflectors = ports(len(hosts), base)
        self.counts = {"received": 0, "lost": 0, "delivered": 0}

    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for (i, j), port in self.path_ports.items():
                sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                await sock.bind((LOOPBACK, port))
                nursery.start_soon(self._serve_path, nursery, sock, i, j)
            task_status.started()

    async def _serve_path(self, nursery: trio.Nursery, sock: trio.socket.SocketType, i: int,
                          j: int) -> None:
        upstream: dict[Any, trio.socket.SocketType] = {}
        while True:
            data, client = await sock.recvfrom(65535)
            up = upstream.get(client)
            if up is None:
                up = upstream[client] = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                await up.bind((LOOPBACK, 0))
                nursery.start_soon(self._serve_replies, nursery, up, sock, client, j, i)
            self._schedule(nursery, (i, j), up, data, (LOOPBACK, self.reflectors[j]))

    async def _serve_replies(self, nursery: trio.Nursery, up: trio.socket.SocketType,
                             front: trio.socket.SocketType, client: Any, j: int, i: int) -> None:
        while True:
            data, _ = await up.recvfrom(65535)
            self._schedule(nursery, (j, i), front, data, client)

    def _schedule(self, nursery: trio.Nursery, path: tuple[int, int],
                  out: trio.socket.SocketType, data: bytes, to: Any) -> None:
        self.counts["received"] += 1
        times = self.states[path].release_times(time.monotonic_ns())
        if not times:
            self.counts["lost"] += 1
        for t in times:
            nursery.start_soon(self._send_at, t, out, data, to)

    async def _send_at(self, t_ns: int, out: trio.socket.SocketType, data: bytes,
                       to: Any) -> None:
        await trio.sleep(max(0.0, (t_ns - time.monotonic_ns()) / 1e9))
        with contextlib.suppress(OSError):
            await out.sendto(data, to)
            self.counts["delivered"] += 1


async def _main(rundir: Path) -> None:
    (rundir / "pid").write_text(str(os.getpid()))
    cfg = json.loads((rundir / "config.json").read_text())
    inv = load(cfg["inventory"])
    hosts = select_hosts(inv, cfg["instance"], sites=cfg.get("sites") or (),
                         carriers=cfg.get("carriers") or (), max_hosts=cfg.get("max_hosts"))
    profile = Profile.model_validate(cfg["profile"])
    plans = plan_paths(inv, hosts, profile)
    idx = {h.name: i for i, h in enumerate(hosts)}
    states = {(idx[s], idx[d]): PathState(p.direction, path_seed(profile, s, d))
              for (s, d), p in plans.items()}
    line = DelayLine(hosts, states, int(cfg["listen_port"]))
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(line.run)
            state = {"instance": cfg["instance"], "pid": os.getpid(), "mode": "loopback",
                     "inventory": cfg["inventory"], "ready": True, "profile": profile.name,
                     "hosts": [{"name": h.name, "namespace": "", "site": h.site,
                                "carrier": h.carrier, "city": h.city, "addresses": [LOOPBACK],
                                "reflector_port": line.reflectors[k]}
                               for k, h in enumerate(hosts)],
                     "path_ports": {f"{hosts[i].name}>{hosts[j].name}": port
                                    for (i, j), port in line.path_ports.items()},
                     "one_way_ms": {f"{s}>{d}": p.one_way_ms
                                    for (s, d), p in plans.items()}}
            (rundir / "state.json").write_text(json.dumps(state, indent=1))
            print(f"testbed {cfg['instance']}: loopback delay line up", flush=True)
            async for _sig in signals:
                nursery.cancel_scope.cancel()
                break


def up_loopback(args: argparse.Namespace) -> dict[str, Any]:
    """Start the delay line for ``ixmeter testbed up --mode loopback``."""
    print("testbed: mode loopback (UDP delay line on 127.0.0.1; no routes, STAMP/UDP only)",
          file=sys.stderr)
    return start_loopback(args.inventory, args.profile, sites=args.sites.split(",")
                          if args.sites else [], max_hosts=args.max_hosts,
                          instance=args.instance, listen_port=args.listen_port)


def start_loopback(inventory: str | Path | None, profile: str | Path | Profile, *,
                   sites: list[str], max_hosts: int | None, instance: str,
                   listen_port: int = 18620, schedule: str = "") -> dict[str, Any]:
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    if parse_schedule(schedule):
        raise daemon.TestbedError("schedules are not supported in loopback mode")
    config = {"inventory": str(Path(inventory or default_inventory()).resolve()),
              "profile": prof.model_dump(mode="json"), "sites": sites, "carriers": [],
              "max_hosts": max_hosts, "listen_port": listen_port}
    return daemon.start(instance, config, module="testbed.delayline")


def main(argv: list[str] | None = None) -> int:
    return daemon.run_main("testbed.delayline", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
