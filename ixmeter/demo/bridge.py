"""A TCP-to-unix-socket bridge so probes inside the testbed's namespaces reach the collector.

The collector listens on a unix socket in the run folder. The probe agent speaks HTTP over TCP
only, and a namespace has no route to the host's own addresses, so this one process opens a
listening TCP socket on 127.0.0.1:PORT *inside each host namespace* (setns(2) into the namespace,
socket(2), then back: a socket keeps the namespace it was created in) and copies bytes both ways
between each accepted connection and the collector's socket. Without namespaces (loopback mode)
it listens once on 127.0.0.1 and writes the chosen port to a file.

    python -m ixmeter.demo.bridge --uds SOCK [--netns NS]... [--port 8650] [--port-file F]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from testbed.netns import in_netns

BRIDGE_PORT = 8650


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


def listeners_in(namespaces: Sequence[str], port: int) -> list[socket.socket]:
    """One listening socket on 127.0.0.1:``port`` in each named namespace (needs
    CAP_SYS_ADMIN); the calling thread is back in its own namespace afterwards."""
    out = []
    for ns in namespaces:
        with in_netns(ns):
            out.append(_listen(port))
    return out


async def _pipe(src: trio.abc.ReceiveStream, dst: trio.abc.SendStream) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while data := await src.receive_some(65536):
            await dst.send_all(data)
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        if isinstance(dst, trio.SocketStream):
            await dst.send_eof()


async def _handle(uds: str, client: trio.SocketStream) -> None:
    try:
        upstream = await trio.open_unix_socket(uds)
    except OSError:
        await client.aclose()
        return
    async with client, upstream, trio.open_nursery() as nursery:
        nursery.start_soon(_pipe, client, upstream)
        nursery.start_soon(_pipe, upstream, client)


async def serve(uds: str, socks: list[socket.socket]) -> None:
    listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(s)) for s in socks]

    async def handler(stream: trio.SocketStream) -> None:
        await _handle(uds, stream)

    await trio.serve_listeners(handler, listeners)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ixmeter.demo.bridge")
    parser.add_argument("--uds", required=True, help="the collector's unix socket")
    parser.add_argument("--netns", action="append", default=[], help="namespace (repeatable)")
    parser.add_argument("--port", type=int, default=BRIDGE_PORT)
    parser.add_argument("--port-file", help="without --netns: write the bound port here")
    args = parser.parse_args(argv)
    if args.netns:
        socks = listeners_in(args.netns, args.port)
    else:
        socks = [_listen(0)]
        if args.port_file:
            Path(args.port_file).write_text(str(socks[0].getsockname()[1]))
    print(f"bridge: {len(socks)} listener(s) -> {args.uds}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(serve, args.uds, socks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
