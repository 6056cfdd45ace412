"""What a client cannot hold of the collector's HTTP server: exact bytes over real loopback
sockets against :class:`HttpServer` with a small ASGI app and short limits."""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from analyzer.collector.h11server import MAX_HEAD, HttpServer, Limits, default_max_connections

LIMITS = Limits(max_connections=4, keep_alive_s=5.0, head_timeout_s=0.5, body_grace_s=0.5,
                body_min_rate=1000.0, send_timeout_s=0.5, grace_s=2.0)
ROOT = Path(__file__).resolve().parents[2]
BIG = 32 * 1024 * 1024  # more than loopback's socket buffers hold


async def app(scope: Any, receive: Any, send: Any) -> None:
    """Echoes the body (``/big`` answers ``BIG`` bytes) and records what it received."""
    body, more = b"", True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            SEEN.append("disconnect")
            return
        body += message.get("body", b"")
        more = message.get("more_body", False)
    SEEN.append(body.decode())
    text = b"x" * BIG if scope["path"] == "/big" else b"got " + body
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(text)).encode())]})
    await send({"type": "http.response.body", "body": text})


SEEN: list[str] = []


@dataclass
class Running:
    server: HttpServer
    port: int

    async def open(self) -> trio.SocketStream:
        return await trio.open_tcp_stream("127.0.0.1", self.port)

    async def exchange(self, data: bytes, *, then: list[bytes] | None = None,
                       pause: float = 0.0, wait: float = 10.0) -> bytes:
        """Send ``data`` (then each of ``then`` after ``pause`` s) on a fresh connection and
        read until the server closes it; fails if it does not within ``wait`` s."""
        out = b""
        async with await self.open() as stream:
            with trio.fail_after(wait):
                await stream.send_all(data)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(dribble, stream, then or [], pause)
                    while chunk := await stream.receive_some(65536):
                        out += chunk
                    nursery.cancel_scope.cancel()
        return out

    async def wait_open(self, n: int) -> None:
        for _ in range(1000):
            if self.server.stats.open == n:
                return
            await trio.sleep(0.01)
        raise AssertionError(f"{self.server.stats.open} connections open, not {n}")


async def dribble(stream: trio.SocketStream, parts: list[bytes], pause: float) -> None:
    """Send ``parts`` with ``pause`` before each (a slow client); a closed peer ends it."""
    try:
        for part in parts:
            await trio.sleep(pause)
            await stream.send_all(part)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    SEEN.clear()
    server, stop = HttpServer(app, limits=LIMITS), trio.Event()
    async with trio.open_nursery() as nursery:
        [url] = await nursery.start(lambda task_status: server.serve(
            "127.0.0.1:0", shutdown_trigger=stop.wait, task_status=task_status))
        yield Running(server, int(url.rsplit(":", 1)[1]))
        stop.set()


def _post(body: bytes, extra: bytes = b"", length: int | None = None) -> bytes:
    """A POST of ``body`` (declared ``length`` long), ``extra`` header lines added."""
    return b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body) if length is None else length, extra, body)


def _head_of(size: int) -> bytes:
    """A GET whose request line and headers are exactly ``size`` bytes."""
    start, end = b"GET /h HTTP/1.1\r\nHost: x\r\nX-Pad: ", b"\r\n\r\n"
    return start + b"a" * (size - len(start) - len(end)) + end


@pytest.mark.parametrize("piece", [1 << 20, 1000])
async def test_head_limit_is_16_kib_however_the_head_arrives(running: Running,
                                                             piece: int) -> None:
    """``MAX_HEAD`` bytes of request line and headers are served, one more is 431, whether
    the head comes in one read or in many (h11 itself bounds only an incomplete head)."""
    for size, status in ((MAX_HEAD, b"200"), (MAX_HEAD + 1, b"431")):
        head = _head_of(size) + b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        parts = [head[i:i + piece] for i in range(0, len(head), piece)]
        out = await running.exchange(parts[0], then=parts[1:], pause=0.01)
        assert out.startswith(b"HTTP/1.1 " + status), (size, out[:60])


async def test_content_length_with_transfer_encoding_is_400_and_closed(running: Running
                                                                       ) -> None:
    """RFC 9112 §6.1: a request framed twice may be a smuggling attempt; the server answers
    400 and closes, and the app never sees it (nor the request hidden after it)."""
    smuggled = b"GET /hidden HTTP/1.1\r\nHost: x\r\n\r\n"
    request = (b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled)
    out = await running.exchange(request)
    assert out.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in out.lower()
    assert out.count(b"HTTP/1.1") == 1
    assert SEEN == []


@pytest.mark.parametrize("body", [
    b"zz\r\nabc\r\n0\r\n\r\n",  # not a hex size
    b"3\r\nabcdef\r\n0\r\n\r\n",  # chunk longer than its size
    b"f" * 21 + b"\r\n",  # a size of more than h11's 20 hex digits
])
async def test_malformed_chunked_body_is_400_and_closed(running: Running, body: bytes) -> None:
    out = await running.exchange(b"POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                                 b"\r\n\r\n" + body)
    assert out.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in out.lower()
    assert SEEN in ([], ["disconnect"])


async def test_slow_head_is_408_and_closed(running: Running) -> None:
    """The head must be complete ``head_timeout_s`` after its first byte; an idle connection
    (no byte yet) is given ``keep_alive_s``."""
    out = await running.exchange(b"GET / HTTP/1.1\r\nHo", then=[b"s"] * 20, pause=0.1)
    assert out.startswith(b"HTTP/1.1 408 ")
    assert running.server.stats.timeouts == 1


async def test_dribbled_body_is_408_and_closed(running: Running) -> None:
    """One byte every 0.1 s is below ``body_min_rate`` once ``body_grace_s`` is over: the
    client gets 408 and the app is told the client is gone (it answers nothing)."""
    out = await running.exchange(_post(b"", length=1000), then=[b"b"] * 50, pause=0.1)
    assert out.startswith(b"HTTP/1.1 408 ")
    assert SEEN == ["disconnect"]
    assert running.server.stats.timeouts == 1


async def test_a_body_at_the_minimum_rate_is_read(running: Running) -> None:
    body = b"y" * 3000
    out = await running.exchange(_post(b"", b"Connection: close\r\n", length=3000),
                                 then=[body[i:i + 500] for i in range(0, 3000, 500)],
                                 pause=0.1)
    assert out.startswith(b"HTTP/1.1 200 ")
    assert out.endswith(b"got " + body)


async def test_an_answer_not_read_is_given_up(running: Running) -> None:
    """A client that asks for an answer and never reads it holds its connection for
    ``send_timeout_s``, not for ever."""
    async with await running.open() as stream:
        await stream.send_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        await running.wait_open(1)
        await running.wait_open(0)


async def test_connections_past_the_limit_get_503_and_the_server_goes_on(running: Running
                                                                         ) -> None:
    held = [await running.open() for _ in range(LIMITS.max_connections)]
    await running.wait_open(LIMITS.max_connections)
    for ask in (b"", _post(b"hi")):  # a client that waits, one that sends at once
        out = await running.exchange(ask)
        assert out.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"retry-after: 5\r\n" in out
        assert out.endswith(b"too many connections\n")
    assert (running.server.stats.refused, running.server.stats.open) == (2, 4)
    await held.pop().aclose()
    await running.wait_open(LIMITS.max_connections - 1)
    assert (await running.exchange(_post(b"ok", b"Connection: close\r\n"))).endswith(b"got ok")
    for stream in held:
        await stream.aclose()


_LOW_FD_SERVER = """
import logging, resource, sys
import trio
from analyzer.collector.h11server import HttpServer, Limits

async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})

async def main():
    server = HttpServer(app, limits=Limits(max_connections=1000))
    async with trio.open_nursery() as nursery:
        [url] = await nursery.start(lambda task_status: server.serve(
            "127.0.0.1:0", shutdown_trigger=None, task_status=task_status))
        print(url, flush=True)

logging.basicConfig(level=logging.INFO, stream=sys.stderr)
resource.setrlimit(resource.RLIMIT_NOFILE, (40, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
trio.run(main)
"""


def test_out_of_descriptors_is_logged_once_and_served_after() -> None:
    """A server at a low open-file limit (40) and a limit of connections above it: ``accept``
    failing with EMFILE is retried after a short back-off and logged once, without a
    traceback; the clients left waiting are served once others close."""
    proc = subprocess.Popen([sys.executable, "-c", _LOW_FD_SERVER], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        trio.run(_many_clients, int(proc.stdout.readline().decode().rsplit(":", 1)[1]))
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    log = err.decode()
    assert log.count("accept failed (Too many open files)") == 1, log
    assert "Traceback" not in log


async def _many_clients(port: int) -> None:
    streams = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(60)]
    answered = await _answered(streams, wait=1.5)
    assert 0 < len(answered) < len(streams)
    for k in answered:
        await streams[k].aclose()
    waiting = [s for k, s in enumerate(streams) if k not in answered]
    assert len(await _answered(waiting, wait=10, ask=False)) == len(waiting)
    for stream in waiting:
        await stream.aclose()


async def _answered(streams: list[trio.SocketStream], wait: float,
                    ask: bool = True) -> set[int]:
    """Indices of the streams answered within ``wait`` s (each sends a GET first)."""
    done: set[int] = set()

    async def one(k: int) -> None:
        if ask:
            await streams[k].send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        if (await streams[k].receive_some(65536)).startswith(b"HTTP/1.1 200 "):
            done.add(k)

    async with trio.open_nursery() as nursery:
        nursery.cancel_scope.deadline = trio.current_time() + wait
        for k in range(len(streams)):
            nursery.start_soon(one, k)
    return done


def test_default_connection_limit_leaves_descriptors_free() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, hard))
        assert default_max_connections() == 50
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
        assert default_max_connections() == min(512, min(4096, hard) - 64)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
