"""``ixmeter reflector``: a STAMP Session-Reflector (RFC 8762 §4.3) until Ctrl-C or SIGTERM.

Stateful by default (its own sequence counter per session, RFC 8762 §4.2) or ``--stateless``;
authenticated with ``--auth-key-file`` (HMAC-SHA-256, RFC 8762 §4.4; the probe's key-file
format, :mod:`probes.keys`); rate-limited per source
address so it cannot be used as an amplifier. Prints its counters when it stops.
"""

from __future__ import annotations

import argparse
import socket
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ixmeter.core.errors import IxmeterError, PermissionProblem

if TYPE_CHECKING:
    from probes.stamp.net import T3Lag
    from probes.stamp.session import SessionReflector

DEFAULT_BINDS = ("0.0.0.0", "::")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", action="append", metavar="ADDR",
                        help="address to listen on; repeat for several "
                             "(default: 0.0.0.0 and ::)")
    parser.add_argument("--port", type=int, default=862,
                        help="UDP port (default 862, RFC 8762 §4.1; below 1024 needs "
                             "CAP_NET_BIND_SERVICE)")
    parser.add_argument("--stateless", action="store_true",
                        help="copy the sender's sequence number instead of counting per session")
    parser.add_argument("--auth-key-file", type=Path, metavar="F",
                        help="authenticated mode: the HMAC key(s) in the probe's key-file "
                             "format: one hex key, or a mapping id -> hex key or list of keys "
                             "(newest first; all are accepted while a key rotates)")
    parser.add_argument("--key-id", metavar="ID",
                        help="this reflector's id in a mapping --auth-key-file (its endpoint "
                             "id in the inventory)")
    parser.add_argument("--rate-limit", type=float, default=100.0, metavar="PPS",
                        help="replies per second per source address (default 100)")
    parser.add_argument("--burst", type=int, default=20,
                        help="token-bucket depth per source address (default 20)")
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="stop after S seconds (default: run until Ctrl-C)")


def read_keys(path: Path, key_id: str | None) -> list[bytes]:
    """The HMAC keys from ``--auth-key-file`` in the probe's key-file format
    (:mod:`probes.keys`): one hex key, or a mapping read under ``--key-id``."""
    from probes.keys import KeyFileError
    from probes.keys import read_keys as read

    try:
        return read(path, key_id, what="--auth-key-file")
    except KeyFileError as exc:
        raise IxmeterError(str(exc), hint=exc.hint or "pass a readable key file to "
                           "--auth-key-file") from None


def run(args: argparse.Namespace) -> int:
    import trio

    from probes.stamp.session import ReflectorConfig, SessionReflector

    if not 0 <= args.port < 65536:
        raise IxmeterError(f"--port {args.port} is not a UDP port",
                           hint="use 1-65535 (0: any free port)")
    if args.rate_limit <= 0 or args.burst < 1:
        raise IxmeterError("--rate-limit must be > 0 and --burst >= 1")
    keys = read_keys(args.auth_key_file, args.key_id) if args.auth_key_file else [None]
    config = ReflectorConfig(stateful=not args.stateless, key=keys[0],
                             old_keys=tuple(k for k in keys[1:] if k), rate_pps=args.rate_limit,
                             burst=args.burst)
    reflector = SessionReflector(config)
    from probes.stamp.net import T3Lag

    lag = T3Lag()
    trio.run(_serve, args.bind or list(DEFAULT_BINDS), args.port, reflector, args.duration,
             lag)
    stats = reflector.statistics()
    print("reflector stopped: " + ", ".join(
        f"{name}={getattr(stats, name)}" for name in stats.__slots__)
        + f", t3_lag_mean_us={lag.mean_ns / 1000:.1f}, t3_lag_max_us={lag.max_ns / 1000:.1f}",
        flush=True)
    return 0


async def _serve(binds: list[str], port: int, reflector: SessionReflector,
                 duration: float | None, lag: T3Lag) -> None:
    import signal

    import trio

    from probes.stamp.net import serve_reflector

    socks: list[socket.socket] = []
    try:
        for addr in binds:
            socks.append(_open(addr, port))
        async with trio.open_nursery() as nursery:
            for sock in socks:
                await nursery.start(partial(serve_reflector, lag=lag), sock, reflector)
                host, bound = sock.getsockname()[:2]
                mode = "stateful" if reflector.config.stateful else "stateless"
                auth = "authenticated" if reflector.config.key else "unauthenticated"
                print(f"reflector listening on [{host}]:{bound} ({mode}, {auth})", flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals, \
                    trio.move_on_after(duration if duration is not None else float("inf")):
                async for _ in signals:
                    break
            nursery.cancel_scope.cancel()
    finally:
        for sock in socks:
            sock.close()


def _open(addr: str, port: int) -> socket.socket:
    from probes.stamp.net import open_udp

    try:
        sock, _info = open_udp(addr, port)
    except PermissionError:
        raise PermissionProblem(
            f"cannot bind UDP port {port} on {addr}",
            hint="grant CAP_NET_BIND_SERVICE (systemd AmbientCapabilities=) or use --port >= "
                 "1024") from None
    except OSError as exc:
        raise IxmeterError(f"cannot listen on [{addr}]:{port}: {exc.strerror}",
                           hint="check --bind names a local address and the port is free"
                           ) from None
    return sock
