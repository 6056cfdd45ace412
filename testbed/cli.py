"""``ixmeter testbed``: build, inspect, drive and remove the emulated carrier network."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from testbed.daemon import DEFAULT_SPIN_US

DEFAULT_INSTANCE = "main"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    up = sub.add_parser("up", help="build the namespaces and start the link emulator")
    up.add_argument("--inventory", help="inventory YAML (default: the shipped hunan.yaml)")
    up.add_argument("--profile", default="baseline",
                    help="built-in profile (baseline, direct) or a profile YAML file")
    up.add_argument("--sites", default="", help="comma-separated site ids to build (default all)")
    up.add_argument("--carriers", default="", help="comma-separated carrier ids (default all)")
    up.add_argument("--max-hosts", type=int, default=None, help="build at most N hosts")
    up.add_argument("--schedule", default="",
                    help="switch profiles at given times: 'SECONDS:PROFILE,...' after start")
    up.add_argument("--spin-us", type=float, default=DEFAULT_SPIN_US,
                    help=f"busy-wait this long before each release (default {DEFAULT_SPIN_US:g})")
    up.add_argument("--read-stamps", action="store_true",
                    help="stamp arrivals when the emulator reads them, not with the kernel's "
                         "receive stamp (less accurate; for comparison)")
    up.add_argument("--advance-us", type=float, default=None,
                    help="count each packet's delay from this long before its arrival stamp "
                         "(default 0 with kernel stamps, 10 with --read-stamps: the calibrated "
                         "TUN wake-up time)")
    up.add_argument("--no-realtime", action="store_true",
                    help="do not run the emulator under SCHED_FIFO (less accurate when busy)")
    up.add_argument("--mode", choices=["auto", "netns", "userns", "loopback"], default="auto",
                    help="netns (root), userns (unshare -Urnm, no root where the kernel "
                         "allows it) or loopback (UDP delay line); auto picks the first possible")
    up.add_argument("--listen-port", type=int, default=18620,
                    help="loopback mode: first UDP port of the delay line (default 18620)")

    down = sub.add_parser("down", help="stop the emulator and remove every namespace")
    down.add_argument("--all", action="store_true", help="every instance, running or stale")

    status = sub.add_parser("status", help="mode, profile, hosts and packet counters")
    status.add_argument("--json", action="store_true", help="print the raw status as JSON")

    ex = sub.add_parser("exec", help="run a command inside a host: exec HOST -- CMD...")
    ex.add_argument("host")
    ex.add_argument("argv", nargs=argparse.REMAINDER, help="the command (after --)")

    prof = sub.add_parser("profile", help="switch the running emulator to another profile")
    prof.add_argument("profile", help="built-in profile name or YAML file")

    paths = sub.add_parser("paths", help="routes and delays of the current profile")
    paths.add_argument("--src", default=None, help="only paths from this host")
    paths.add_argument("--dst", default=None, help="only paths to this host")

    sub.add_parser("check", help="say which mode this machine allows and what is missing")
    for p in (up, down, status, ex, prof, paths):
        p.add_argument("--instance", default=DEFAULT_INSTANCE,
                       help="testbed instance name (default 'main'); several may run at once")


def _split(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def run(args: argparse.Namespace) -> int:
    handler = {"up": _up, "down": _down, "status": _status, "exec": _exec,
               "profile": _profile, "paths": _paths, "check": _check}[args.action]
    return handler(args)


def _check(args: argparse.Namespace) -> int:
    from testbed import netns

    priv = netns.check_privileges()
    if priv.full:
        print("mode: netns (network namespaces + TUN link emulator)")
        return 0
    print("namespace mode unavailable; missing: " + "; ".join(priv.missing))
    userns = netns.userns_available()
    print(f"user + network namespace (unshare -Urnm): {'allowed' if userns else 'not allowed'}")
    if userns:
        print("mode: userns (namespaces inside your own user namespace; no real-time priority)")
    else:
        print("mode: loopback (UDP delay line on 127.0.0.1, STAMP/UDP only)")
    return 0


def _up(args: argparse.Namespace) -> int:
    from testbed import netns

    mode = args.mode
    if mode == "auto":
        priv = netns.check_privileges()
        mode = "netns"
        if not priv.full:
            mode = "userns" if netns.userns_available() else "loopback"
            print("testbed: namespace mode needs " + "; ".join(priv.missing)
                  + f" -> falling back to {mode} mode", file=sys.stderr)
    if mode == "loopback":
        from testbed.delayline import up_loopback

        state = up_loopback(args)
    else:
        from testbed.api import Testbed

        tb = Testbed.up(args.inventory, args.profile, sites=_split(args.sites),
                        carriers=_split(args.carriers), max_hosts=args.max_hosts,
                        schedule=args.schedule, instance=args.instance, spin_us=args.spin_us,
                        realtime=not args.no_realtime, advance_us=args.advance_us,
                        kernel_stamps=not args.read_stamps, mode=mode)
        state = tb.state
    print(f"testbed {args.instance}: up, mode {state['mode']}, {len(state['hosts'])} hosts, "
          f"profile {args.profile}, emulator pid {state['pid']}")
    for h in state["hosts"]:
        print(f"  {h['name']:<20} {h.get('namespace', '-'):<28} {' '.join(h['addresses'])}")
    return 0


def _down(args: argparse.Namespace) -> int:
    from testbed import daemon

    names = daemon.instances() if args.all else [args.instance]
    for name in names:
        was_up = daemon.stop(name)
        print(f"testbed {name}: {'stopped' if was_up else 'not running'}; cleaned up")
    if args.all:
        from testbed import netns

        orphans = netns.delete_namespaces("ixm-")
        if orphans:
            print(f"removed {len(orphans)} orphan namespace(s): {', '.join(orphans)}")
    return 0


def _us(summary: dict[str, float] | None) -> str:
    """Median, p99 and maximum of a timing summary in us, or "no packets yet"."""
    if not summary:
        return "no packets yet"
    return f"{summary['p50']} / {summary['p99']} / {summary['max']} us (median / p99 / max)"


def _status(args: argparse.Namespace) -> int:
    from testbed import daemon

    state = daemon.read_state(args.instance)
    if state is None:
        print(f"testbed {args.instance}: down")
        return 1
    if state["mode"] == "loopback":
        print(f"testbed {args.instance}: up, mode loopback (UDP delay line), pid {state['pid']},"
              f" profile {state['profile']}, {len(state['hosts'])} hosts")
        return 0
    live = daemon.control(args.instance, {"op": "status"})
    if args.json:
        print(json.dumps({**state, **live}, indent=1))
        return 0
    print(f"testbed {args.instance}: up, mode {state['mode']}, pid {state['pid']}, "
          f"profile {live['profile']}, {len(state['hosts'])} hosts, uptime {live['uptime_s']} s")
    print("  " + ", ".join(f"{k} {v}" for k, v in live["stats"].items()))
    print(f"  arrivals stamped by {live.get('arrival')}, advance {live.get('advance_us')} us, "
          f"stamp fallbacks {live.get('stamp_fallbacks')}, tap drops {live.get('tap_drops')}; "
          f"release lateness {_us(live.get('release_late_us'))}; "
          f"read after arrival {_us(live.get('read_wait_us'))}; priority {live.get('priority')}")
    for h in live["history"]:
        print(f"  profile {h['profile']} at +{h['after_s']} s ({h['why']})")
    return 0


def _exec(args: argparse.Namespace) -> int:
    from testbed.api import Testbed

    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        from testbed.daemon import TestbedError

        raise TestbedError("no command given", hint="write: ixmeter testbed exec HOST -- CMD...")
    tb = Testbed.attach(args.instance)
    wrapped = tb.wrap(args.host, argv)
    sys.stdout.flush()
    if tb.mode == "loopback":
        return subprocess.call(wrapped)
    os.execvp(wrapped[0], wrapped)


def _profile(args: argparse.Namespace) -> int:
    from testbed.api import Testbed

    name = Testbed.attach(args.instance).set_profile(args.profile)
    print(f"testbed {args.instance}: profile {name}")
    return 0


def _paths(args: argparse.Namespace) -> int:
    from testbed.api import Testbed

    lines = []
    for p in Testbed.attach(args.instance).paths():
        if args.src not in (None, p["src"]) or args.dst not in (None, p["dst"]):
            continue
        hops = " ".join(h["name"] for h in p["hops"])
        lines.append(f"{p['src']:>18} -> {p['dst']:<18} {p['one_way_ms']:8.3f} ms  "
                     f"loss {p['loss']:.4f}  via {hops}")
    try:
        print("\n".join(lines))
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
    return 0
