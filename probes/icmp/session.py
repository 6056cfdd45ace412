"""Sans-IO ICMP/ICMPv6 echo session: which reply answers which probe, and what each probe became.

The echo exchange is RFC 792 ("Echo or Echo Reply Message") and RFC 4443 §4.1-4.2; the
round-trip delay of a probe is RFC 2681 §2.4, measured from its send to its reply's receipt;
a probe with no reply within Tmax is lost (RFC 7680 §2.4), the first copy of a reply counts
and further copies are duplicates (RFC 7679 §3.4).

:class:`EchoSession` reads no clock and no socket (STYLE.md §2): the pinger
(:mod:`probes.icmp.pinger`) feeds it events with the times it read — a probe sent at (wall,
monotonic), a kernel TX stamp, bytes received with their kernel RX stamp, the timer at a
monotonic instant — and sends, emits and sleeps as it is told. Times are integer ns: wall-clock
Unix ns for labels and kernel stamps, monotonic ns for intervals and deadlines.

Probes are told apart by a random process cookie and a 64-bit token in the echo data (not the
PID), so neighbouring pingers never take each other's replies; the 16-bit ICMP sequence number
is the token's low bits, so 65,536 probes may be in flight and a sequence number wraps as the
token grows. Each probe ends as exactly one :class:`Outcome`:

- received: its first reply, handed over ``hold_ns`` after it so copies within the hold are
  the record's ``dup`` (RFC 7679 §3.4);
- lost: no reply within Tmax (RFC 7680 §2.4), at its Tmax; a reply later than Tmax, by the
  kernel stamps or by the timer, is a local "late" drop, never an arrival (RFC 6703 §4.1.2
  allows re-labelling with a longer Tmax later);
- error: a malformed reply to it (``malformed_reply``), the wall clock stepped during it
  (``clock_step``, RFC 2681 §2.5), a round trip below zero by its timestamps (``clock_fault``:
  a receive stamp before the send stamp is a clock problem, not a delay of 0, RFC 2681 §2.4),
  or it never left (``send_error``, ``local_drop``). An error is never a sample and never loss.

What is not a probe's outcome is counted in :meth:`EchoSession.statistics`: copies after the
hand-over (``duplicate``), late and stray replies, bytes that are not ICMP (``malformed_stray``),
ICMP errors about other protocols' packets (``foreign``).
"""

from __future__ import annotations

import enum
import heapq
import struct
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ixmeter.core.errors import MalformedPacket
from ixmeter.core.record import ErrorKind, Status, TimestampSource
from probes.clock import stepped
from probes.icmp import codec, trace_codec

HOLD_NS = 100_000_000  # an answered probe waits this long for duplicate copies, then is out
RECENT = 65536  # tokens remembered after their outcome: a later copy is duplicate or late
_U64 = (1 << 64) - 1
_REPLY_TYPES = (codec.ICMP_ECHO_REPLY, codec.ICMPV6_ECHO_REPLY)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The end of one echo probe. ``rtt_ns`` only when received; ``error`` only on error."""

    dst: str
    token: int
    status: Status
    sent_at_ns: int
    tmax_ns: int
    ts_source: TimestampSource
    rtt_ns: int | None = None
    dup: int = 0
    reply_ttl: int | None = None
    error: ErrorKind | None = None
    error_detail: str | None = None
    ctx: Any = None


@dataclass(frozen=True, slots=True)
class Request:
    """An echo request to send to ``dst`` now: its token and its ICMP message."""

    token: int
    dst: str
    data: bytes


class Received(enum.Enum):
    """What one received ICMP message was to the session."""

    ANSWER = "answer"  # the first reply to a probe in flight: it ends in a hold
    DUPLICATE = "duplicate"  # a further copy (RFC 7679 §3.4)
    LATE = "late"  # after Tmax (RFC 7680 §2.4)
    STRAY = "stray"  # ours by cookie, for no probe this session remembers
    MALFORMED = "malformed"  # bytes that are no ICMP message we asked for: dropped
    FOREIGN = "foreign"  # an ICMP error about another protocol's packet
    ERROR_NOTED = "error_noted"  # an ICMP error quoting one of our probes: its detail
    NOT_OURS = "not_ours"  # another process's echo, a trace probe's, a request


@dataclass(frozen=True, slots=True)
class EchoStatistics:
    """Counters of one session since it started (frozen: a snapshot).

    ``sent`` probes left; each ends ``received``, ``lost`` or as an error after leaving
    (``malformed``, ``clock_steps``, ``clock_faults``); ``in_flight`` have not ended yet.
    ``send_errors`` and ``queue_full`` never left (and are not in ``sent``). The rest are local
    drops of received messages, never loss; ``foreign`` counts ICMP errors about other
    protocols' packets by IP protocol number.
    """

    sent: int
    received: int
    lost: int
    in_flight: int
    malformed: int
    clock_steps: int
    clock_faults: int
    send_errors: int
    queue_full: int
    recv_errors: int
    duplicates: int
    late: int
    stray: int
    malformed_stray: int
    foreign: Mapping[int, int]

    def local_drops(self) -> dict[str, int]:
        """The local drops by cause (``ixmeter.core.heartbeat.LOCAL_DROP_CAUSES``), nonzero ones."""
        drops = {"queue_full": self.queue_full, "send_error": self.send_errors,
                 "recv_error": self.recv_errors, "late": self.late,
                 "duplicate": self.duplicates, "stray": self.stray,
                 "malformed_stray": self.malformed_stray}
        return {cause: n for cause, n in drops.items() if n}


@dataclass(slots=True)
class _Pending:
    dst: str
    seq: int
    size: int
    wall_ns: int
    mono_ns: int
    tmax_ns: int
    ctx: Any
    tx_ns: int | None = None
    rtt_ns: int | None = None
    kernel: bool = False
    dup: int = 0
    ttl: int | None = None
    error: ErrorKind | None = None
    detail: str | None = None


class EchoSession:
    """The probes of one ICMP socket: requests out, replies matched, one outcome each.

    ``ident`` is the ICMP identifier written into requests; only on a ``raw`` socket does a
    reply have to carry it (a datagram socket's kernel sets its own and filters by it).
    ``v6``: ICMPv6 messages; on a raw IPv4 socket received bytes start with the IP header.
    ``first_token`` is the first probe's token (random, so restarts do not reuse tokens).
    """

    def __init__(self, *, cookie: int, ident: int, first_token: int, v6: bool = False,
                 raw: bool = True, hold_ns: int = HOLD_NS) -> None:
        self.cookie, self.ident, self.v6, self.raw, self.hold_ns = cookie, ident, v6, raw, hold_ns
        self._cookie_bytes = codec.MAGIC + struct.pack("!I", cookie)
        self._next = first_token & _U64
        self._pending: dict[int, _Pending] = {}
        self._by_seq: dict[int, int] = {}
        self._heap: list[tuple[int, int]] = []  # (monotonic deadline, token): Tmax or hold
        self._recent: OrderedDict[int, bool] = OrderedDict()  # token -> was answered
        self._fill: dict[int, bytes] = {}
        self._c: Counter[str] = Counter()
        self._foreign: Counter[int] = Counter()

    # --- probes out ---------------------------------------------------------------------------

    @property
    def next_token(self) -> int:
        """The token the next request will carry."""
        return self._next

    def in_flight(self) -> int:
        return len(self._pending)

    def payload(self, token: int, size: int) -> bytes:
        """The echo data of probe ``token`` in an ICMP message of ``size`` octets."""
        fill = self._fill.get(size)
        if fill is None:
            fill = codec.payload_for(0, 0, size)[codec.PREFIX.size:]
            self._fill[size] = fill
        return self._cookie_bytes + token.to_bytes(8, "big") + fill

    def request(self, dst: str, size: int, tmax_ns: int, wall_ns: int, mono_ns: int,
                ctx: Any = None) -> Request | Outcome:
        """The next probe to ``dst`` of ``size`` ICMP octets, sent at (``wall_ns``,
        ``mono_ns``) with Tmax ``tmax_ns``: a :class:`Request` to send now, or the error
        :class:`Outcome` of a probe that cannot leave (65,536 in flight, a size below the
        codec's minimum)."""
        token = self._next
        self._next = (token + 1) & _U64
        seq = token & 0xFFFF
        if seq in self._by_seq:
            self._c["queue_full"] += 1
            return self._never_left(dst, token, tmax_ns, wall_ns, ctx, ErrorKind.LOCAL_DROP,
                                    "65536 echoes in flight")
        try:
            data = codec.encode_echo(self.ident, seq, self.payload(token, size), v6=self.v6)
        except ValueError as exc:  # a size below codec.MIN_SIZE: the probe cannot be sent
            self._c["send_error"] += 1
            return self._never_left(dst, token, tmax_ns, wall_ns, ctx, ErrorKind.SEND_ERROR,
                                    str(exc))
        self._pending[token] = _Pending(dst, seq, size, wall_ns, mono_ns, tmax_ns, ctx)
        self._by_seq[seq] = token
        heapq.heappush(self._heap, (mono_ns + tmax_ns, token))
        self._c["sent"] += 1
        return Request(token, dst, data)

    def send_failed(self, token: int, detail: str) -> Outcome | None:
        """The request ``token`` was not sent (``sendto`` failed): its ``send_error`` outcome,
        now; it is not a sample and not loss. None if it is not in flight."""
        entry = self._pending.pop(token, None)
        if entry is None:
            return None
        self._by_seq.pop(entry.seq, None)
        self._c["sent"] -= 1
        self._c["send_error"] += 1
        return Outcome(entry.dst, token, Status.ERROR, entry.wall_ns, entry.tmax_ns,
                       TimestampSource.USER, error=ErrorKind.SEND_ERROR, error_detail=detail,
                       ctx=entry.ctx)

    def _never_left(self, dst: str, token: int, tmax_ns: int, wall_ns: int, ctx: Any,
                    kind: ErrorKind, detail: str) -> Outcome:
        return Outcome(dst, token, Status.ERROR, wall_ns, tmax_ns, TimestampSource.USER,
                       error=kind, error_detail=detail, ctx=ctx)

    def tx_timestamp(self, data: bytes, stamp_ns: int) -> None:
        """A kernel TX stamp read back with (the start of) the packet it stamps, from the
        socket's error queue; it becomes the probe's send time."""
        at = data.find(self._cookie_bytes)
        if at < 0:
            return
        entry = self._pending.get(int.from_bytes(data[at + 8:at + 16], "big"))
        if entry is not None and entry.tx_ns is None:
            entry.tx_ns = stamp_ns

    # --- messages in --------------------------------------------------------------------------

    def receive(self, data: bytes, rx_ns: int | None, ttl: int | None, src: str,
                wall_ns: int, mono_ns: int) -> Received:
        """One ICMP message from ``src`` as the socket returned it, with its kernel RX stamp
        (``rx_ns``, wall ns) and received TTL if known, read at (``wall_ns``, ``mono_ns``)."""
        try:
            if self.raw and not self.v6:
                ttl = data[8] if len(data) > 8 else ttl
                data = codec.strip_ipv4(data)
            msg = codec.decode_icmp(data, v6=self.v6)
        except MalformedPacket:
            self._c["malformed_stray"] += 1
            return Received.MALFORMED
        if isinstance(msg, codec.ForeignError):
            self._foreign[msg.protocol] += 1  # another protocol's error: not ours, not malformed
            return Received.FOREIGN
        if isinstance(msg, codec.IcmpError):
            return self._on_error(msg)
        if msg.type in _REPLY_TYPES and msg.code == 0:
            return self._on_reply(msg, rx_ns, ttl, src, wall_ns, mono_ns)
        return Received.NOT_OURS

    def receive_failed(self) -> None:
        """The socket's receive failed (not ``EAGAIN``): a local ``recv_error``."""
        self._c["recv_error"] += 1

    def _lookup(self, echo: codec.Echo) -> tuple[int | None, bool]:
        """(token, payload intact) of the probe an echo answers, or (None, _) if not ours (a
        trace probe on the same identifier is not: ``trace_codec.MAGIC``)."""
        if (self.raw and echo.ident != self.ident) or echo.payload[:4] == trace_codec.MAGIC:
            return None, False
        try:
            tok = codec.decode_token(echo.payload)
        except MalformedPacket:
            return self._by_seq.get(echo.seq), False
        if tok.cookie != self.cookie:
            return None, False
        if (tok.token & 0xFFFF) != echo.seq:
            return self._by_seq.get(echo.seq), False
        return tok.token, True

    def _on_reply(self, echo: codec.Echo, rx_ns: int | None, ttl: int | None, src: str,
                  wall_ns: int, mono_ns: int) -> Received:
        token, intact = self._lookup(echo)
        if token is None:
            return Received.NOT_OURS
        entry = self._pending.get(token)
        if entry is None:
            return self._after_outcome(token)
        if rx_ns is not None and entry.tx_ns is not None and rx_ns - entry.tx_ns > entry.tmax_ns:
            self._c["late"] += 1  # in the kernel after Tmax, though not yet expired here
            return Received.LATE
        if entry.rtt_ns is not None or entry.error is not None:
            entry.dup += 1
            self._c["duplicate"] += 1
            return Received.DUPLICATE
        if not intact or not echo.checksum_ok or len(echo.payload) + 8 != entry.size:
            entry.error, entry.detail = ErrorKind.MALFORMED_REPLY, f"bad echo reply from {src}"
        elif stepped(entry.wall_ns, entry.mono_ns, wall_ns, mono_ns):
            entry.error, entry.detail = ErrorKind.CLOCK_STEP, "wall clock stepped during probe"
        elif not self._round_trip(entry, rx_ns, mono_ns):
            self._c["late"] += 1  # after Tmax: lost at its Tmax (RFC 7680 §2.4)
            return Received.LATE
        else:
            entry.ttl = ttl
        heapq.heappush(self._heap, (mono_ns + self.hold_ns, token))
        return Received.ANSWER

    def _after_outcome(self, token: int) -> Received:
        answered = self._recent.get(token)
        if answered is None:
            self._c["stray"] += 1
            return Received.STRAY
        if answered:
            self._c["duplicate"] += 1
            return Received.DUPLICATE
        self._c["late"] += 1
        return Received.LATE

    def _round_trip(self, entry: _Pending, rx_ns: int | None, mono_ns: int) -> bool:
        """Set the probe's round-trip delay (RFC 2681 §2.4): kernel RX - TX stamps when both
        exist, else the monotonic interval; a negative one is a ``clock_fault`` error, never a
        delay of 0. False if it exceeds Tmax (no delay set: the probe stays in flight)."""
        if rx_ns is not None and entry.tx_ns is not None:
            rtt, kernel = rx_ns - entry.tx_ns, True
        else:
            rtt, kernel = mono_ns - entry.mono_ns, False
        if rtt > entry.tmax_ns:
            return False
        entry.kernel = kernel
        if rtt < 0:
            entry.error = ErrorKind.CLOCK_FAULT
            entry.detail = (f"round trip {rtt} ns < 0: the {'kernel RX' if kernel else 'receive'}"
                            f" stamp precedes the send stamp")
        else:
            entry.rtt_ns = rtt
        return True

    def _on_error(self, err: codec.IcmpError) -> Received:
        token, intact = self._lookup(err.quoted)
        entry = self._pending.get(token) if token is not None and intact else None
        if entry is None:
            return Received.NOT_OURS
        if entry.detail is None:
            entry.detail = f"icmp{'v6' if self.v6 else ''} error type {err.type} code {err.code}"
        return Received.ERROR_NOTED

    # --- the timer ----------------------------------------------------------------------------

    def next_deadline(self) -> int | None:
        """The monotonic instant the timer should next fire at (a Tmax or a hold's end)."""
        return self._heap[0][0] if self._heap else None

    def expire(self, mono_ns: int) -> list[Outcome]:
        """The outcomes due at ``mono_ns``: answered probes past their hold, unanswered ones
        past their Tmax (lost), earliest first. Feed every reply received before first."""
        done: list[Outcome] = []
        heap = self._heap
        while heap and heap[0][0] <= mono_ns:
            outcome = self._finalise(heapq.heappop(heap)[1])
            if outcome is not None:
                done.append(outcome)
        return done

    def finalise_all(self) -> list[Outcome]:
        """End every probe still in flight now (shutdown): unanswered ones are lost."""
        done = [o for _deadline, token in sorted(self._heap)
                if (o := self._finalise(token)) is not None]
        self._heap.clear()
        return done

    def _finalise(self, token: int) -> Outcome | None:
        entry = self._pending.pop(token, None)
        if entry is None:
            return None
        self._by_seq.pop(entry.seq, None)
        self._recent[token] = entry.rtt_ns is not None or entry.error is not None
        if len(self._recent) > RECENT:
            self._recent.popitem(last=False)
        outcome = _outcome(entry, token)
        self._c[_COUNTED[outcome.error] if outcome.error else outcome.status.value] += 1
        return outcome

    def statistics(self) -> EchoStatistics:
        c = self._c
        return EchoStatistics(
            sent=c["sent"], received=c["received"], lost=c["lost"], in_flight=len(self._pending),
            malformed=c["malformed"], clock_steps=c["clock_step"], clock_faults=c["clock_fault"],
            send_errors=c["send_error"], queue_full=c["queue_full"], recv_errors=c["recv_error"],
            duplicates=c["duplicate"], late=c["late"], stray=c["stray"],
            malformed_stray=c["malformed_stray"], foreign=MappingProxyType(dict(self._foreign)))


_COUNTED = {ErrorKind.MALFORMED_REPLY: "malformed", ErrorKind.CLOCK_STEP: "clock_step",
            ErrorKind.CLOCK_FAULT: "clock_fault"}


def _outcome(e: _Pending, token: int) -> Outcome:
    sent = e.tx_ns if e.kernel and e.tx_ns is not None else e.wall_ns
    source = TimestampSource.KERNEL if e.kernel else TimestampSource.USER
    if e.error is not None:
        return Outcome(e.dst, token, Status.ERROR, sent, e.tmax_ns, source, dup=e.dup,
                       error=e.error, error_detail=e.detail, ctx=e.ctx)
    if e.rtt_ns is None:
        return Outcome(e.dst, token, Status.LOST, sent, e.tmax_ns, source,
                       error_detail=e.detail, ctx=e.ctx)
    return Outcome(e.dst, token, Status.RECEIVED, sent, e.tmax_ns, source, rtt_ns=e.rtt_ns,
                   dup=e.dup, reply_ttl=e.ttl, ctx=e.ctx)
