"""The TCP-to-unix-socket bridge that lets probes in namespaces reach the collector: real sockets
on loopback and in the test's folder (the namespace variant runs in test_demo.py)."""

from __future__ import annotations

from pathlib import Path

import trio

from ixmeter.demo.bridge import _listen, serve


async def _echo_server(path: Path, task_status: trio.TaskStatus[None]) -> None:
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(str(path))
    sock.listen(8)
    listener = trio.SocketListener(sock)

    async def echo(stream: trio.SocketStream) -> None:
        async with stream:
            while data := await stream.receive_some(65536):
                await stream.send_all(b"echo:" + data)

    task_status.started()
    await trio.serve_listeners(echo, [listener])


async def test_bytes_cross_both_ways(tmp_path: Path) -> None:
    uds = tmp_path / "collector.sock"
    listening = _listen(0)
    port = listening.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(_echo_server, uds)
        nursery.start_soon(serve, str(uds), [listening])
        for _ in range(2):  # two connections, one after the other
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(b"GET /healthz")
                assert await stream.receive_some(100) == b"echo:GET /healthz"
        nursery.cancel_scope.cancel()


async def test_collector_down_closes_the_connection(tmp_path: Path) -> None:
    listening = _listen(0)
    port = listening.getsockname()[1]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve, str(tmp_path / "absent.sock"), [listening])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            with trio.fail_after(5):
                assert await stream.receive_some(100) == b""
        nursery.cancel_scope.cancel()
