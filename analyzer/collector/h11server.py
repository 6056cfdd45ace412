"""A small HTTP/1.1 server for the collector's ASGI app: h11 for the protocol, a thin trio loop.

HTTP/1.1 message framing, keep-alive and ``Expect: 100-continue`` (RFC 9112, RFC 9110 §10.1.1)
are h11's; this module only moves bytes and maps one request at a time per connection onto the
ASGI 3 HTTP interface (``http.request`` / ``http.disconnect`` in, ``http.response.start`` /
``http.response.body`` out). A response's head and body go out in one ``send_all``. Plain TCP
or TLS (1.2 or later, ``http/1.1`` by ALPN); no HTTP/2, no WebSocket, no lifespan events (the
collector's app has none).

Why not a general ASGI server: per request hypercorn's trio worker spawns a task, passes
events through memory channels, locks and shields every write and restarts an idle-timeout
task; on the collector's one core that was ~0.3 ms of the ~0.8 ms a re-sent batch cost
(docs/collector.md, "Measured").

A connection is closed after an idle ``keep_alive_s``, after a response the client or h11 says
ends it, or after an answer given before the request body was read (an early 413): the server
then half-closes and reads what the client still sends for up to ``LINGER_S``, so the client
sees the answer rather than a reset (RFC 9112 §9.6). On shutdown, idle connections close at
once and requests in progress get ``grace_s`` to finish.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import stat
import time
from collections.abc import Awaitable, Callable, MutableMapping
from email.utils import formatdate
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import h11
import trio

from ixmeter.errors import IxmeterError

log = logging.getLogger("ixmeter.collector")

Message = MutableMapping[str, Any]
AsgiApp = Callable[[Message, Callable[[], Awaitable[Message]],
                    Callable[[Message], Awaitable[None]]], Awaitable[None]]

MAX_RECV = 64 * 1024
MAX_HEAD = 16 * 1024  # request line and headers, as hypercorn's h11_max_incomplete_size
KEEP_ALIVE_S = 75.0
GRACE_S = 3.0
HANDSHAKE_S = 60.0
LINGER_S = 2.0
SERVER_HEADER = (b"server", b"ixmeter-collector")
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)
Stream = trio.SocketStream | trio.SSLStream[trio.SocketStream]


def parse_bind(bind: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` as (host, port)."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise IxmeterError(f"cannot listen on {bind!r}: expected HOST:PORT",
                           hint="e.g. 127.0.0.1:8650, 0.0.0.0:8650, [::1]:8650 or unix:PATH")
    return host.removeprefix("[").removesuffix("]"), int(port)


async def open_listener(bind: str) -> trio.SocketListener:
    """One listening socket, bound as hypercorn bound it: ``HOST:PORT`` on IPv4, ``[IPv6]:PORT``
    on IPv6 with the system's dual-stack default (``[::]`` takes IPv4 too where
    ``net.ipv6.bindv6only`` is 0), or ``unix:PATH`` (a stale socket file left at PATH is
    replaced; any other file there is an error)."""
    address: str | tuple[str, int]
    if bind.startswith("unix:"):
        address, family = bind.removeprefix("unix:"), socket.AF_UNIX
        _remove_stale_socket(address)
    else:
        address = parse_bind(bind)
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        if family != socket.AF_UNIX:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        await sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise IxmeterError(f"cannot listen on {bind!r}: {exc.strerror or exc}") from None
    return trio.SocketListener(sock)


def _remove_stale_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.remove(path)
    except FileNotFoundError:
        pass


def server_ssl_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """TLS 1.2 or later with the certificate chain in ``certfile``, offering ``http/1.1``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    context.set_alpn_protocols(["http/1.1"])
    return context


def url_of(scheme: str, sockname: tuple[Any, ...] | str) -> str:
    """How a bound socket is reported: ``http://HOST:PORT``, ``http://[IPv6]:PORT`` or
    ``http://unix:PATH``, as hypercorn reported them."""
    if isinstance(sockname, str):
        return f"{scheme}://unix:{sockname}"
    host, port = sockname[0], sockname[1]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def asgi_scope(request: h11.Request, scheme: str, client: tuple[str, int] | None,
               server: tuple[str, int] | None) -> Message:
    """The ASGI ``http`` scope of a request (raises UnicodeDecodeError for a non-ASCII
    target)."""
    raw_path, _, query = request.target.partition(b"?")
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version.decode(), "method": request.method.decode(),
            "scheme": scheme, "path": unquote(raw_path.decode("ascii")), "raw_path": raw_path,
            "query_string": query, "root_path": "", "headers": list(request.headers),
            "client": client, "server": server}


_date_cache: tuple[int, bytes] = (0, b"")


def http_date(now: float) -> bytes:
    """The ``Date`` header value (RFC 9110 §6.6.1), formatted once per second."""
    global _date_cache
    second = int(now)
    if _date_cache[0] != second:
        _date_cache = (second, formatdate(second, usegmt=True).encode())
    return _date_cache[1]


class _Exchange:
    """One request and its response on an h11 connection: the ASGI ``receive`` and ``send``."""

    def __init__(self, conn: h11.Connection, stream: Stream, head_only: bool) -> None:
        self.conn, self.stream, self.head_only = conn, stream, head_only
        self.body_done = self.started = self.finished = self.broken = False
        self._head: h11.Response | None = None
        self._answered = trio.Event()

    async def receive(self) -> Message:
        if self.body_done and not self.broken:
            await self._answered.wait()  # ASGI: nothing more until the client is gone
        if self.body_done or self.broken:
            return {"type": "http.disconnect"}
        try:
            if self.conn.they_are_waiting_for_100_continue and not self.started:
                await self.stream.send_all(self._bytes(
                    h11.InformationalResponse(status_code=100, headers=[SERVER_HEADER])))
            event = await next_event(self.conn, self.stream)
        except (*_GONE, h11.RemoteProtocolError):
            event = h11.ConnectionClosed()
        if isinstance(event, h11.Data):
            return {"type": "http.request", "body": bytes(event.data), "more_body": True}
        if isinstance(event, h11.EndOfMessage):
            self.body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        self.broken = True
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start" and not self.started:
            self.started = True
            status = int(message["status"])
            headers = [*message.get("headers", ()), (b"date", http_date(time.time())),
                       SERVER_HEADER]
            self._head = h11.Response(status_code=status, headers=headers,
                                      reason=_REASONS.get(status, b""))
        elif kind == "http.response.body" and self.started and not self.finished:
            await self._write(message.get("body", b""), bool(message.get("more_body", False)))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for this response")

    async def _write(self, body: bytes, more: bool) -> None:
        if not more:
            self.finished = True
            self._answered.set()
        if self.broken:
            return  # the client is gone: the app finishes, nobody reads the answer
        data = b""
        if self._head is not None:
            data, self._head = self._bytes(self._head), None
        if body and not self.head_only:
            data += self._bytes(h11.Data(data=body))
        if not more:
            data += self._bytes(h11.EndOfMessage())
        try:
            await self.stream.send_all(data)
        except _GONE:
            self.broken = True

    def _bytes(self, event: h11.Event) -> bytes:
        return self.conn.send(event) or b""


async def next_event(conn: h11.Connection, stream: Stream
                     ) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
    """The connection's next event, reading from the stream as long as h11 needs data."""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(MAX_RECV)))
        else:
            return event


class HttpServer:
    """Serves one ASGI app over HTTP/1.1 on the listeners of :meth:`serve`."""

    def __init__(self, app: AsgiApp, *, ssl_context: ssl.SSLContext | None = None,
                 keep_alive_s: float = KEEP_ALIVE_S, grace_s: float = GRACE_S) -> None:
        self.app, self.ssl_context = app, ssl_context
        self.keep_alive_s, self.grace_s = keep_alive_s, grace_s
        self.scheme = "http" if ssl_context is None else "https"
        self._idle: set[trio.CancelScope] = set()
        self._closing = False

    async def serve(self, bind: str, *, shutdown_trigger: Callable[[], Awaitable[Any]] | None,
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on ``bind``, report the URLs, serve until ``shutdown_trigger`` returns."""
        listeners = [await open_listener(bind)]
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                await accepting.start(partial(trio.serve_listeners, self._connection,
                                              listeners, handler_nursery=connections))
                task_status.started([url_of(self.scheme, ln.socket.getsockname())
                                     for ln in listeners])
                await (shutdown_trigger or trio.sleep_forever)()
                accepting.cancel_scope.cancel()
            self._closing = True
            for scope in list(self._idle):
                scope.cancel()
            connections.cancel_scope.deadline = trio.current_time() + self.grace_s

    async def _connection(self, tcp: trio.SocketStream) -> None:
        stream: Stream = tcp
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        try:
            if self.ssl_context is not None:
                stream = trio.SSLStream(tcp, self.ssl_context, server_side=True,
                                        https_compatible=True)
                with trio.fail_after(HANDSHAKE_S):
                    await stream.do_handshake()
            addrs = (_addr(tcp.socket.getpeername()), _addr(tcp.socket.getsockname()))
            await self._requests(conn, stream, addrs)
        except (*_GONE, trio.TooSlowError, OSError, h11.ProtocolError):
            pass
        except Exception:  # one broken connection must not stop the others
            log.exception("HTTP connection failed")
        finally:
            await _close(stream, linger=conn.their_state in (h11.SEND_BODY, h11.ERROR))

    async def _requests(self, conn: h11.Connection, stream: Stream,
                        addrs: tuple[tuple[str, int] | None, tuple[str, int] | None]) -> None:
        """Serve the connection's requests in turn, until one ends it."""
        while not self._closing:
            try:
                request = await self._next_request(conn, stream)
            except h11.RemoteProtocolError as exc:
                await self._refuse(conn, stream, exc.error_status_hint)
                return
            if request is None:
                return
            exchange = _Exchange(conn, stream, request.method == b"HEAD")
            await self._exchange(exchange, request, addrs)
            _skip_read_ends(conn)
            if (exchange.broken or conn.our_state is not h11.DONE
                    or conn.their_state is not h11.DONE):
                return
            conn.start_next_cycle()

    async def _next_request(self, conn: h11.Connection, stream: Stream) -> h11.Request | None:
        """The next request, or None when the client closes or stays idle too long."""
        event: object = None
        with trio.move_on_after(self.keep_alive_s) as idle:
            self._idle.add(idle)
            try:
                event = await next_event(conn, stream)
            finally:
                self._idle.discard(idle)
        return event if isinstance(event, h11.Request) else None

    async def _exchange(self, exchange: _Exchange, request: h11.Request,
                        addrs: tuple[tuple[str, int] | None, tuple[str, int] | None]) -> None:
        try:
            scope = asgi_scope(request, self.scheme, *addrs)
        except UnicodeDecodeError:
            await _error(exchange, 400, b"Bad Request")
            return
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception:
            if exchange.broken:
                return  # the client went away mid-request; the app noticed
            log.exception("%s %s failed", request.method.decode(), scope["path"])
        if not exchange.started:
            await _error(exchange, 500, b"Internal Server Error")

    async def _refuse(self, conn: h11.Connection, stream: Stream, status: int) -> None:
        """Answer a request h11 cannot parse, if its state still allows an answer."""
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            exchange = _Exchange(conn, stream, False)
            await _error(exchange, status, _REASONS.get(status, b"Bad Request"))


async def _error(exchange: _Exchange, status: int, text: bytes) -> None:
    await exchange.send({"type": "http.response.start", "status": status,
                         "headers": [(b"content-length", str(len(text)).encode()),
                                     (b"content-type", b"text/plain; charset=utf-8"),
                                     (b"connection", b"close")]})
    await exchange.send({"type": "http.response.body", "body": text})


def _skip_read_ends(conn: h11.Connection) -> None:
    """Consume a request end already received (a body-less request the app did not read)."""
    while conn.their_state is h11.SEND_BODY:
        if conn.next_event() is h11.NEED_DATA:
            return


async def _close(stream: Stream, linger: bool) -> None:
    """Close the connection; with ``linger`` (a request not read to its end), half-close
    first and read and drop what the client still sends for up to ``LINGER_S``, so that it
    reads the answer instead of a reset."""
    try:
        if linger:
            with trio.move_on_after(LINGER_S):
                if isinstance(stream, trio.SocketStream):
                    await stream.send_eof()
                while await stream.receive_some(MAX_RECV):
                    pass
    except (*_GONE, OSError):
        pass
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            await stream.aclose()


def _addr(sockname: Any) -> tuple[str, int] | None:
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return str(sockname[0]), int(sockname[1])
    return None

