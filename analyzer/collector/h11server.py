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
(docs/collector.md, "Measured"). uvicorn and granian run asyncio apps only.

What a client cannot hold (:class:`Limits`; docs/collector.md, "The HTTP server"):

- connections: past ``max_connections`` open ones, a new connection gets a fixed ``503`` with
  ``Retry-After`` from the accept loop itself (no task) and is closed; ``accept`` failing for
  want of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) is logged once per
  ``LOG_EVERY_S`` and retried after ``ACCEPT_BACKOFF_S``;
- time: a connection idle between requests is closed after ``keep_alive_s``; a request head
  (and a TLS handshake) must be complete ``head_timeout_s`` after its first byte; a body must
  keep an average of ``body_min_rate`` bytes/s after ``body_grace_s`` (the scheme and values of
  Apache httpd's ``mod_reqtimeout`` ``body=20,MinRate=500``); an answer must be taken by the
  client within ``send_timeout_s``. A head or body too slow is answered ``408``, then closed;
- memory: request line and headers at most ``MAX_HEAD`` bytes however they arrive (``431``);
  the body is read only when the app asks for it (the collector authenticates the head
  first), ``MAX_RECV`` bytes at a time;
- framing (RFC 9112 §6.1, §6.3, §7.1): a request with both ``Content-Length`` and
  ``Transfer-Encoding`` is answered ``400`` and closed, as is a malformed chunked body (unless
  the app has answered already).

A connection is closed after an idle ``keep_alive_s``, after a response the client or h11 says
ends it, or after an answer given before the request body was read (an early 401 or 413): that
answer says ``Connection: close``, and the server half-closes and reads what the client still
sends for up to ``LINGER_S``, so the client sees the answer rather than a reset (RFC 9112
§9.6). On shutdown the listener closes, idle connections close at once and requests in
progress get ``grace_s`` to finish.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import resource
import socket
import ssl
import stat
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import h11
import trio

from ixmeter.core.errors import IxmeterError

log = logging.getLogger("ixmeter.collector")

Message = MutableMapping[str, Any]
AsgiApp = Callable[[Message, Callable[[], Awaitable[Message]],
                    Callable[[Message], Awaitable[None]]], Awaitable[None]]

MAX_RECV = 64 * 1024
MAX_HEAD = 16 * 1024  # request line and headers, as hypercorn's h11_max_incomplete_size
MAX_CONNECTIONS = 512
FD_RESERVE = 64  # descriptors kept for the store, the log and the listener
LINGER_S = 2.0
ACCEPT_BACKOFF_S = 0.1
LOG_EVERY_S = 10.0
SERVER_HEADER = (b"server", b"ixmeter-collector")
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)
_ACCEPT_TRANSIENT = frozenset({errno.ECONNABORTED, errno.EPERM, errno.EPROTO})
_ACCEPT_CAPACITY = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 5\r\ncontent-length: 21\r\n"
         b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
         b"server: ixmeter-collector\r\n\r\ntoo many connections\n")
Stream = trio.SocketStream | trio.SSLStream[trio.SocketStream]


def default_max_connections() -> int:
    """``MAX_CONNECTIONS``, or fewer where the open-file limit (``RLIMIT_NOFILE``) would run
    out first: that limit less ``FD_RESERVE`` (less at most half of it)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, soft - min(FD_RESERVE, soft // 2)))


@dataclass(frozen=True)
class Limits:
    """What one client may take of the server (seconds, bytes per second, connections)."""

    max_connections: int = MAX_CONNECTIONS
    keep_alive_s: float = 75.0
    head_timeout_s: float = 10.0
    body_grace_s: float = 20.0
    body_min_rate: float = 500.0
    send_timeout_s: float = 30.0
    grace_s: float = 3.0


@dataclass
class ServerStats:
    """What the server counts (shown on the collector's ``/metrics``)."""

    open: int = 0  # connections open now
    refused: int = 0  # connections refused past ``max_connections``
    accept_errors: int = 0  # accept() failures for want of descriptors or memory
    timeouts: int = 0  # request heads and bodies answered 408


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
    """One request and its response on an h11 connection: the ASGI ``receive`` and ``send``.

    ``failure`` is the status the server answers itself when the body cannot be read to its
    end (408 too slow, 400 malformed): the app is told the client is gone, and what it sends
    then is dropped."""

    def __init__(self, conn: h11.Connection, stream: Stream, head_only: bool,
                 limits: Limits) -> None:
        self.conn, self.stream, self.head_only, self.limits = conn, stream, head_only, limits
        self.body_done = self.started = self.finished = self.broken = False
        self.failure: int | None = None
        self._head: h11.Response | None = None
        self._answered = trio.Event()
        self._body_since = math.nan
        self._received = 0

    async def receive(self) -> Message:
        if self.body_done and not self.broken:
            await self._answered.wait()  # ASGI: nothing more until the client is gone
        if self.body_done or self.broken or self.failure is not None:
            return {"type": "http.disconnect"}
        try:
            if self.conn.they_are_waiting_for_100_continue and not self.started:
                await self._send_all(self._bytes(
                    h11.InformationalResponse(status_code=100, headers=[SERVER_HEADER])))
            event = await self._next_body_event()
        except h11.RemoteProtocolError as exc:
            self.failure = exc.error_status_hint
            return {"type": "http.disconnect"}
        except _GONE:
            event = h11.ConnectionClosed()
        if isinstance(event, h11.Data):
            self._received += len(event.data)
            return {"type": "http.request", "body": bytes(event.data), "more_body": True}
        if isinstance(event, h11.EndOfMessage):
            self.body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        self.broken = True
        return {"type": "http.disconnect"}

    async def _next_body_event(self) -> Any:
        """The next body event, in time for the body's minimum rate (else a 408); one already
        received is taken without a timer."""
        event = self.conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        if math.isnan(self._body_since):
            self._body_since = trio.current_time()
        limits = self.limits
        deadline = self._body_since + limits.body_grace_s + self._received / limits.body_min_rate
        with trio.CancelScope(deadline=deadline):
            return await next_event(self.conn, self.stream)
        raise h11.RemoteProtocolError("request body too slow", 408)

    async def send(self, message: Message) -> None:
        if self.failure is not None:
            return  # the server answers this request itself
        kind = message["type"]
        if kind == "http.response.start" and not self.started:
            self._start(int(message["status"]), [*message.get("headers", ())])
        elif kind == "http.response.body" and self.started and not self.finished:
            await self._write(message.get("body", b""), bool(message.get("more_body", False)))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for this response")

    async def answer(self, status: int) -> None:
        """The server's own short plain-text answer; the connection closes after it."""
        text = _REASONS.get(status, b"Error")
        self._start(status, [(b"content-length", str(len(text)).encode()),
                             (b"content-type", b"text/plain; charset=utf-8"),
                             (b"connection", b"close")], closing=True)
        await self._write(text, False)

    def _start(self, status: int, headers: list[tuple[bytes, bytes]],
               closing: bool = False) -> None:
        self.started = True
        headers += [(b"date", http_date(time.time())), SERVER_HEADER]
        if not closing and self.conn.their_state is h11.SEND_BODY:
            if _skip_read_ends(self.conn):
                self.body_done = True
            else:
                headers.append((b"connection", b"close"))  # answered before the body was read
        self._head = h11.Response(status_code=status, headers=headers,
                                  reason=_REASONS.get(status, b""))

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
            await self._send_all(data)
        except _GONE:
            self.broken = True

    async def _send_all(self, data: bytes) -> None:
        """Write, or give the client up if it does not take it within ``send_timeout_s``."""
        with trio.move_on_after(self.limits.send_timeout_s):
            await self.stream.send_all(data)
            return
        raise trio.BrokenResourceError("the client did not read the answer in time")

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
    """Serves one ASGI app over HTTP/1.1 on the listener of :meth:`serve`, within ``limits``
    (by default :class:`Limits` with :func:`default_max_connections`)."""

    def __init__(self, app: AsgiApp, *, ssl_context: ssl.SSLContext | None = None,
                 limits: Limits | None = None) -> None:
        self.app, self.ssl_context = app, ssl_context
        self.limits = limits or Limits(max_connections=default_max_connections())
        self.scheme = "http" if ssl_context is None else "https"
        self.stats = ServerStats()
        self._idle: set[trio.CancelScope] = set()
        self._closing = False
        self._refusals = _Throttled("connection limit of %d reached: refused %d connection(s)")
        self._accept_failures = _Throttled("accept failed (%s) %d time(s); backing off")

    async def serve(self, bind: str, *, shutdown_trigger: Callable[[], Awaitable[Any]] | None,
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on ``bind``, report the URLs, serve until ``shutdown_trigger`` returns."""
        listener = await open_listener(bind)
        async with trio.open_nursery() as connections:
            try:
                async with trio.open_nursery() as accepting:
                    accepting.start_soon(self._accept, listener.socket, connections)
                    task_status.started([url_of(self.scheme, listener.socket.getsockname())])
                    await (shutdown_trigger or trio.sleep_forever)()
                    accepting.cancel_scope.cancel()
            finally:
                listener.socket.close()
            self._closing = True
            for scope in list(self._idle):
                scope.cancel()
            connections.cancel_scope.deadline = trio.current_time() + self.limits.grace_s

    async def _accept(self, sock: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        """Accept connections: each served in ``nursery`` or, past the limit, refused here."""
        while True:
            try:
                client, _ = await sock.accept()
            except OSError as exc:
                if exc.errno in _ACCEPT_TRANSIENT:
                    continue
                if exc.errno not in _ACCEPT_CAPACITY:
                    raise
                self.stats.accept_errors += 1
                self._accept_failures.note(os.strerror(exc.errno))
                await trio.sleep(ACCEPT_BACKOFF_S)
                continue
            if self.stats.open >= self.limits.max_connections:
                self.stats.refused += 1
                self._refusals.note(self.limits.max_connections)
                _refuse_busy(client, plain=self.ssl_context is None)
                continue
            self.stats.open += 1
            nursery.start_soon(self._connection, trio.SocketStream(client))

    async def _connection(self, tcp: trio.SocketStream) -> None:
        stream: Stream = tcp
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        try:
            if self.ssl_context is not None:
                stream = trio.SSLStream(tcp, self.ssl_context, server_side=True,
                                        https_compatible=True)
                with trio.fail_after(self.limits.head_timeout_s):
                    await stream.do_handshake()
            addrs = (_addr(tcp.socket.getpeername()), _addr(tcp.socket.getsockname()))
            await self._requests(conn, stream, addrs)
        except (*_GONE, trio.TooSlowError, OSError, h11.ProtocolError):
            pass
        except Exception:  # one broken connection must not stop the others
            log.exception("HTTP connection failed")
        finally:
            self.stats.open -= 1
            await _close(stream, linger=conn.our_state is not h11.IDLE and conn.their_state
                         not in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED))

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
            exchange = _Exchange(conn, stream, request.method == b"HEAD", self.limits)
            await self._exchange(exchange, request, addrs)
            _skip_read_ends(conn)
            if (exchange.broken or conn.our_state is not h11.DONE
                    or conn.their_state is not h11.DONE):
                return
            conn.start_next_cycle()

    async def _next_request(self, conn: h11.Connection, stream: Stream) -> h11.Request | None:
        """The next request; None when the client closes or stays idle too long. Raises
        :class:`h11.RemoteProtocolError` for a head h11 cannot parse, one not complete
        ``head_timeout_s`` after its first byte (408), over ``MAX_HEAD`` bytes (431) or with
        both ``Content-Length`` and ``Transfer-Encoding`` (400)."""
        fed = len(conn.trailing_data[0])  # bytes of this request already received (pipelined)
        limits = self.limits
        wait = limits.head_timeout_s if fed else limits.keep_alive_s
        with trio.CancelScope(deadline=trio.current_time() + wait) as scope:
            self._idle.add(scope)
            try:
                while (event := conn.next_event()) is h11.NEED_DATA:
                    data = await stream.receive_some(MAX_RECV)
                    if data and not fed:
                        scope.deadline = trio.current_time() + limits.head_timeout_s
                    fed += len(data)
                    conn.receive_data(bytes(data))
            finally:
                self._idle.discard(scope)
        if scope.cancelled_caught:
            if fed and not self._closing:
                self.stats.timeouts += 1
                raise h11.RemoteProtocolError("request head too slow", 408)
            return None
        if not isinstance(event, h11.Request):
            return None
        if fed > MAX_HEAD and fed - len(conn.trailing_data[0]) > MAX_HEAD:
            raise h11.RemoteProtocolError("request head too large", 431)
        if _framed_twice(event):
            raise h11.RemoteProtocolError("both Content-Length and Transfer-Encoding", 400)
        return event

    async def _exchange(self, exchange: _Exchange, request: h11.Request,
                        addrs: tuple[tuple[str, int] | None, tuple[str, int] | None]) -> None:
        try:
            scope = asgi_scope(request, self.scheme, *addrs)
        except UnicodeDecodeError:
            await exchange.answer(400)
            return
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception:
            if not exchange.broken and exchange.failure is None:  # else the app saw it go
                log.exception("%s %s failed", request.method.decode(), scope["path"])
        if exchange.failure is not None:
            self.stats.timeouts += exchange.failure == 408
            if not exchange.started:
                await exchange.answer(exchange.failure)
        elif not exchange.started:
            await exchange.answer(500)

    async def _refuse(self, conn: h11.Connection, stream: Stream, status: int) -> None:
        """Answer a request refused before the app saw it, if h11's state still allows it."""
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            await _Exchange(conn, stream, False, self.limits).answer(status)


def _framed_twice(request: h11.Request) -> bool:
    """Both ``Content-Length`` and ``Transfer-Encoding`` (RFC 9112 §6.1: a possible request
    smuggling attempt; answered 400 and closed)."""
    names = [name for name, _ in request.headers]
    return b"transfer-encoding" in names and b"content-length" in names


def _refuse_busy(sock: trio.socket.SocketType, plain: bool) -> None:
    """Answer ``503`` and close, synchronously: what the client has sent so far is read and
    dropped first, so that closing does not reset the answer away (TLS: just closed)."""
    with socket.socket(fileno=sock.detach()) as raw:
        try:
            raw.setblocking(False)
            if plain:
                with contextlib.suppress(BlockingIOError):
                    raw.recv(MAX_RECV)
                raw.send(_BUSY)
                raw.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class _Throttled:
    """A warning logged at most once per ``LOG_EVERY_S``, with how often it happened since."""

    def __init__(self, message: str) -> None:
        self.message, self.count, self.last = message, 0, -math.inf

    def note(self, arg: object) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= LOG_EVERY_S:
            log.warning(self.message, arg, self.count)
            self.count, self.last = 0, now


def _skip_read_ends(conn: h11.Connection) -> bool:
    """Consume (and drop) what is already received of a request body the app did not read;
    True if that was all of it."""
    while conn.their_state is h11.SEND_BODY:
        if conn.next_event() is h11.NEED_DATA:
            return False
    return True


async def _close(stream: Stream, linger: bool) -> None:
    """Close the connection; with ``linger`` (answered a request not read to its end), half-close
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

