"""The collector's HTTP/1.1 server on real loopback sockets, with a small ASGI app."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import pytest
import trio

from analyzer.collector.h11server import (
    HttpServer,
    Limits,
    asgi_scope,
    http_date,
    parse_bind,
    url_of,
)
from ixmeter.core.errors import IxmeterError


async def echo_app(scope: Any, receive: Any, send: Any) -> None:
    """Answers with the request body; ``/boom`` raises, ``/chunks`` streams, ``/slow`` waits
    for ``release``, ``/early`` answers without reading the body."""
    path = scope["path"]
    if path == "/boom":
        raise ValueError("boom")
    if path == "/slow":
        await RELEASE.wait()
    body = b""
    if path != "/early":
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
    headers = [(b"content-type", b"text/plain")]
    if path == "/chunks":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"one,", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})
        return
    text = b"early" if path == "/early" else scope["method"].encode() + b" " + body
    await send({"type": "http.response.start", "status": 201,
                "headers": [*headers, (b"content-length", str(len(text)).encode())]})
    await send({"type": "http.response.body", "body": text})


RELEASE = trio.Event()


@dataclass
class Running:
    server: HttpServer
    host: str
    port: int
    stop: trio.Event


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    global RELEASE
    RELEASE = trio.Event()
    server = HttpServer(echo_app, limits=Limits(keep_alive_s=1.0, grace_s=5.0))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        [url] = await nursery.start(lambda task_status: server.serve(
            "127.0.0.1:0", shutdown_trigger=stop.wait, task_status=task_status))
        yield Running(server, "127.0.0.1", int(url.rsplit(":", 1)[1]), stop)
        stop.set()


class Client:
    """An h11 client on one TCP connection."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream, self.conn = stream, h11.Connection(h11.CLIENT)

    async def request(self, method: str, target: str, body: bytes = b"",
                      headers: list[tuple[str, str]] | None = None
                      ) -> tuple[h11.Response, bytes]:
        h = [("host", "x"), ("content-length", str(len(body))), *(headers or [])]
        await self.stream.send_all(self.conn.send(h11.Request(method=method, target=target,
                                                              headers=h))
                                   + self.conn.send(h11.Data(data=body))
                                   + self.conn.send(h11.EndOfMessage()))
        return await self.response()

    async def response(self) -> tuple[h11.Response, bytes]:
        head, body = None, b""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return head, body
            else:
                raise AssertionError(event)

    def next_cycle(self) -> None:
        self.conn.start_next_cycle()


async def connect(r: Running) -> Client:
    return Client(await trio.open_tcp_stream(r.host, r.port))


async def status_of_get(r: Running) -> int:
    """The status of a GET on a new connection (is the server still serving?)."""
    client = await connect(r)
    head, _ = await client.request("GET", "/ok")
    await client.stream.aclose()
    return head.status_code


async def raw(r: Running, data: bytes, wait: float = 5.0) -> bytes:
    """Send bytes on a fresh connection and read until the server closes it."""
    out = b""
    async with await trio.open_tcp_stream(r.host, r.port) as stream:
        with trio.fail_after(wait):
            await stream.send_all(data)
            while chunk := await stream.receive_some(65536):
                out += chunk
    return out


async def test_keep_alive_serves_requests_in_turn(running: Running) -> None:
    client = await connect(running)
    for k in range(3):
        head, body = await client.request("POST", "/echo", b"x" * (100_000 * k))
        assert (head.status_code, body) == (201, b"POST " + b"x" * (100_000 * k))
        assert dict(head.headers)[b"server"] == b"ixmeter-collector"
        assert dict(head.headers)[b"date"].endswith(b" GMT")
        client.next_cycle()
    await client.stream.aclose()


async def test_pipelined_requests_are_answered_in_order(running: Running) -> None:
    requests = b"".join(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n%d" % k
                        for k in range(3))
    out = await raw(running, requests + b"GET /last HTTP/1.1\r\nHost: x\r\n"
                                        b"Connection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 201 Created") == 4
    assert out.index(b"POST 0") < out.index(b"POST 1") < out.index(b"POST 2") < out.index(b"GET ")


async def test_chunked_request_and_streamed_response(running: Running) -> None:
    out = await raw(running, b"POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                             b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in out.lower()
    assert out.endswith(b"4\r\none,\r\n3\r\ntwo\r\n0\r\n\r\n")


async def test_expect_100_continue(running: Running) -> None:
    stream = await trio.open_tcp_stream(running.host, running.port)
    await stream.send_all(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                          b"Expect: 100-continue\r\n\r\n")
    with trio.fail_after(5):
        interim = await stream.receive_some(65536)
    assert interim.startswith(b"HTTP/1.1 100 ")
    await stream.send_all(b"hi")
    with trio.fail_after(5):
        final = await stream.receive_some(65536)
    assert final.startswith(b"HTTP/1.1 201 ")
    assert final.endswith(b"POST hi")
    await stream.aclose()


async def test_head_has_no_body(running: Running) -> None:
    client = await connect(running)
    head, body = await client.request("HEAD", "/h")
    assert (head.status_code, body, dict(head.headers)[b"content-length"]) == (201, b"", b"5")
    await client.stream.aclose()


@pytest.mark.parametrize(("data", "status"), [
    (b"NOT HTTP AT ALL\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431),
    (b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400),
])
async def test_unparsable_requests_are_refused_and_closed(running: Running, data: bytes,
                                                          status: int) -> None:
    out = await raw(running, data)
    assert out.startswith(b"HTTP/1.1 %d " % status)
    assert await status_of_get(running) == 201


async def test_app_error_is_500_and_the_server_goes_on(running: Running) -> None:
    client = await connect(running)
    head, body = await client.request("GET", "/boom")
    assert (head.status_code, body) == (500, b"Internal Server Error")
    await client.stream.aclose()
    assert await status_of_get(running) == 201


async def test_early_answer_is_read_before_the_close(running: Running) -> None:
    """An answer given before the body was read (like the collector's early 413) reaches a
    client that is still sending: the server lingers instead of resetting the connection."""
    stream = await trio.open_tcp_stream(running.host, running.port)
    await stream.send_all(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n")
    with trio.move_on_after(3):
        for _ in range(40):
            await stream.send_all(b"z" * 100_000)
    answer = b""
    with trio.fail_after(5):
        while chunk := await stream.receive_some(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 201 ")
    assert answer.endswith(b"early")
    await stream.aclose()


async def test_idle_connection_closes_after_keep_alive(running: Running) -> None:
    stream = await trio.open_tcp_stream(running.host, running.port)
    with trio.fail_after(5):
        assert await stream.receive_some(10) == b""  # keep_alive_s = 1
    await stream.aclose()


async def test_shutdown_finishes_requests_in_progress(running: Running) -> None:
    idle = await trio.open_tcp_stream(running.host, running.port)
    busy = await connect(running)
    async with trio.open_nursery() as nursery:
        answers: list[int] = []

        async def slow() -> None:
            answers.append((await busy.request("POST", "/slow", b"s"))[0].status_code)

        nursery.start_soon(slow)
        await trio.sleep(0.2)
        running.stop.set()
        with trio.fail_after(5):
            assert await idle.receive_some(10) == b""  # idle: closed at once
        RELEASE.set()
    assert answers == [201]
    await idle.aclose()
    await busy.stream.aclose()


async def test_unix_socket_replacing_a_stale_one(tmp_path: Path) -> None:
    """``unix:PATH``, as the demo runs the collector; a socket file left by a killed run is
    replaced, any other file at PATH is refused."""
    path = tmp_path / "collector.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    server, stop = HttpServer(echo_app), trio.Event()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(lambda task_status: server.serve(
            f"unix:{path}", shutdown_trigger=stop.wait, task_status=task_status))
        assert urls == [f"http://unix:{path}"]
        client = Client(await trio.open_unix_socket(str(path)))
        head, body = await client.request("POST", "/u", b"over unix")
        assert (head.status_code, body) == (201, b"POST over unix")
        await client.stream.aclose()
        stop.set()
    (tmp_path / "file").write_text("not a socket")
    with pytest.raises(IxmeterError):
        await HttpServer(echo_app).serve(f"unix:{tmp_path / 'file'}", shutdown_trigger=None)


_V6ONLY = Path("/proc/sys/net/ipv6/bindv6only")


@pytest.mark.skipif(not _V6ONLY.exists() or _V6ONLY.read_text().strip() != "0",
                    reason="net.ipv6.bindv6only is set (or unknown): [::] is IPv6 only here")
async def test_ipv6_any_takes_ipv4_too_and_a_taken_port_is_an_error() -> None:
    """``[::]:PORT`` is one dual-stack socket, as it was under hypercorn (where the system's
    ``net.ipv6.bindv6only`` is 0, the Linux default)."""
    server, stop = HttpServer(echo_app), trio.Event()
    async with trio.open_nursery() as nursery:
        [url] = await nursery.start(lambda task_status: server.serve(
            "[::]:0", shutdown_trigger=stop.wait, task_status=task_status))
        port = int(url.rsplit(":", 1)[1])
        client = Client(await trio.open_tcp_stream("127.0.0.1", port))
        assert (await client.request("GET", "/v4"))[0].status_code == 201
        await client.stream.aclose()
        with pytest.raises(IxmeterError, match="in use"):
            await HttpServer(echo_app).serve(f"[::]:{port}", shutdown_trigger=None)
        stop.set()


def test_parse_bind() -> None:
    assert parse_bind("127.0.0.1:8650") == ("127.0.0.1", 8650)
    assert parse_bind("[::1]:0") == ("::1", 0)
    assert parse_bind("0.0.0.0:1") == ("0.0.0.0", 1)
    for bad in ("8650", ":8650", "host:", "host:99999", "host:x"):
        with pytest.raises(IxmeterError):
            parse_bind(bad)


def test_urls_scope_and_date() -> None:
    assert url_of("http", ("127.0.0.1", 80)) == "http://127.0.0.1:80"
    assert url_of("https", ("::1", 443, 0, 0)) == "https://[::1]:443"
    request = h11.Request(method="POST", target="/a%20b?x=1&y", headers=[("Host", "h")])
    scope = asgi_scope(request, "https", ("1.2.3.4", 5), None)
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/a b", b"/a%20b",
                                                                         b"x=1&y")
    assert (scope["method"], scope["scheme"], scope["headers"]) == ("POST", "https",
                                                                    [(b"host", b"h")])
    assert http_date(0) == b"Thu, 01 Jan 1970 00:00:00 GMT"
    assert http_date(784111777) == b"Sun, 06 Nov 1994 08:49:37 GMT"  # RFC 9110 §5.6.7
