"""Sans-IO STAMP Session-Sender and Session-Reflector (RFC 8762 §4, RFC 8972).

Neither object reads a clock or a socket: callers feed ``(bytes, times)`` and send what they are
given (STYLE.md §2). Times are integers: wall-clock Unix ns for STAMP timestamps, monotonic ns
for intervals, Tmax and rate limiting.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field, replace

from ixmeter.core.errors import IxmeterError, MalformedPacket
from ixmeter.core.rules import CLOCK_ERROR_MAX_NS
from probes.clock import stepped, timestamp_to_unix_ns, unix_ns_to_ntp
from probes.stamp.codec import (
    FLAG_U,
    HMAC_TLV_SIZE,
    SYNC_FREE_RUNNING,
    TLV_EXTRA_PADDING,
    TLV_TIMESTAMP_INFO,
    TS_SW_LOCAL,
    BadHmac,
    ErrorEstimate,
    ReflectorPacket,
    SenderPacket,
    TimestampInfo,
    Tlv,
    base_size,
    decode_reflector,
    decode_sender,
    decode_timestamp_info,
    decode_tlvs,
    encode_reflector,
    encode_sender,
    encode_tlvs,
    tlvs_verified,
)
from probes.stamp.tlvs import ReflectorClock, reflect, sign, signed_room


class StampConfigError(IxmeterError):
    """A session configured in a way STAMP cannot send (size below the base packet, ...)."""


UNKNOWN_TTL = 255  # RFC 5357 §4.2.1: 255 when the TTL cannot be read
_U32 = 1 << 32


# --- Session-Reflector ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReflectorConfig:
    """How a reflector behaves.

    ``stateful``: per-session sequence counter (RFC 8762 §4.2, §4.3.1); otherwise the sender's
    seq is copied. ``key``: authenticated mode (RFC 8762 §4.4); ``old_keys`` are accepted too
    while a key rotates (a reply is signed with the key its test packet verified with).
    ``rate_pps``/``burst``: token bucket per source address so the reflector cannot serve as an
    amplifier (RFC 8762 §6).
    """

    stateful: bool = True
    key: bytes | None = None
    old_keys: tuple[bytes, ...] = ()
    rate_pps: float = 100.0
    burst: int = 20
    max_sources: int = 65536
    max_sessions: int = 65536
    ts_method: int = TS_SW_LOCAL


@dataclass(frozen=True, slots=True)
class ReflectorStatistics:
    """Counters of a reflector since it started."""

    received: int
    reflected: int
    malformed: int
    bad_hmac: int
    bad_tlv_hmac: int  # authenticated TLVs without a verifying HMAC TLV (RFC 8972 §4.8)
    rate_limited: int
    sessions: int


@dataclass(slots=True)
class _Bucket:
    tokens: float
    last_ns: int


@dataclass(frozen=True, slots=True)
class PreparedReply:
    """A reply ready but for its T3 timestamp."""

    packet: ReflectorPacket
    key: bytes | None
    dscp: int | None = None  # the DSCP to send the reply with (None: the socket's)

    def encode(self, t3_ns: int) -> bytes:
        """The reply bytes with T3 = ``t3_ns`` (Unix ns, NTP format)."""
        return encode_reflector(replace(self.packet, timestamp=unix_ns_to_ntp(t3_ns)), self.key)


class SessionReflector:
    """Answers STAMP test packets (RFC 8762 §4.3), stateless or stateful.

    Reply size (RFC 8762 §4.6): a packet shorter than the base packet (a TWAMP-Light sender's
    14 octets) gets the base packet; a longer one gets a reply of the same size, never more.
    Octets after the base are TLVs (RFC 8972 §4) or padding: :func:`probes.stamp.tlvs.reflect`
    (Timestamp Information filled, Class of Service and the reply's DSCP, the HMAC TLV in
    authenticated mode, U flag for an unknown TLV).
    """

    def __init__(self, config: ReflectorConfig | None = None) -> None:
        self.config = config or ReflectorConfig()
        self._base = base_size(self.config.key is not None)
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self._sessions: OrderedDict[tuple[Hashable, int], int] = OrderedDict()
        self._error_estimate = ErrorEstimate.from_ns(16_000_000_000, synced=False)
        self._sync_source = SYNC_FREE_RUNNING
        self._counts = {"received": 0, "reflected": 0, "malformed": 0, "bad_hmac": 0,
                        "bad_tlv_hmac": 0, "rate_limited": 0}

    def set_clock(self, error_estimate: ErrorEstimate, sync_source: int) -> None:
        """The Error Estimate (RFC 4656 §4.1.2) and sync source (RFC 8972 §4.3) to report."""
        self._error_estimate = error_estimate
        self._sync_source = sync_source if error_estimate.synced else SYNC_FREE_RUNNING

    def statistics(self) -> ReflectorStatistics:
        return ReflectorStatistics(sessions=len(self._sessions), **self._counts)

    def handle(self, data: bytes, source: Hashable, rx_ns: int, ttl: int | None,
               now_wall_ns: int, now_mono_ns: int, tos: int | None = None) -> bytes | None:
        """The reply to send back to ``source`` (an address tuple), or None to drop.

        ``rx_ns`` is T2 (Unix ns), ``now_wall_ns`` becomes T3. :meth:`prepare` + :meth:`
        PreparedReply.encode` do the same in two steps so T3 can be read after the work.
        """
        prepared = self.prepare(data, source, rx_ns, ttl, now_mono_ns, tos)
        return None if prepared is None else prepared.encode(now_wall_ns)

    def prepare(self, data: bytes, source: Hashable, rx_ns: int, ttl: int | None,
                now_mono_ns: int, tos: int | None = None) -> PreparedReply | None:
        """Check and decode one packet; None to drop it. Encode the result with T3 = the wall
        clock read just before sending ("at the start of transmitting", RFC 8762 §4.3.1).

        Rate limiting comes first, then the HMAC ("as early as possible", RFC 8762 §4.4).
        """
        self._counts["received"] += 1
        host = source[0] if isinstance(source, tuple) and source else source
        if not self._allow(host, now_mono_ns):
            self._counts["rate_limited"] += 1
            return None
        try:
            sender, key = self._decode(data)
        except BadHmac:
            self._counts["bad_hmac"] += 1
            return None
        except MalformedPacket:
            self._counts["malformed"] += 1
            return None
        self._counts["reflected"] += 1
        seq = self._next_seq(source, sender.ssid) if self.config.stateful else sender.seq
        out = reflect(sender.trailer, tos=tos, key=key, sender_seq=sender.seq, reply_seq=seq,
                      clock=ReflectorClock(self._sync_source, self.config.ts_method))
        self._counts["bad_tlv_hmac"] += out.integrity_failed
        pkt = ReflectorPacket(
            seq=seq, timestamp=0, error_estimate=self._error_estimate,
            ssid=sender.ssid, receive_timestamp=unix_ns_to_ntp(rx_ns), sender_seq=sender.seq,
            sender_timestamp=sender.timestamp, sender_error_estimate=sender.error_estimate,
            sender_ttl=UNKNOWN_TTL if ttl is None else ttl & 0xFF, trailer=out.trailer)
        return PreparedReply(pkt, key, out.dscp)

    def _decode(self, data: bytes) -> tuple[SenderPacket, bytes | None]:
        """The test packet and the key it verified with (the newest first)."""
        keys = (self.config.key, *self.config.old_keys) if self.config.key else (None,)
        for key in keys[:-1]:
            try:
                return decode_sender(data, key), key
            except BadHmac:
                continue
        return decode_sender(data, keys[-1]), keys[-1]

    def _next_seq(self, source: Hashable, ssid: int) -> int:
        key = (source, ssid)
        seq = self._sessions.pop(key, 0)
        self._sessions[key] = (seq + 1) % _U32
        if len(self._sessions) > self.config.max_sessions:
            self._sessions.popitem(last=False)
        return seq

    def _allow(self, host: Hashable, now_ns: int) -> bool:
        """Token bucket per source address (RFC 8762 §6: not an amplifier)."""
        cfg = self.config
        bucket = self._buckets.pop(host, None) or _Bucket(float(cfg.burst), now_ns)
        elapsed = max(0, now_ns - bucket.last_ns)
        bucket.tokens = min(float(cfg.burst), bucket.tokens + elapsed * cfg.rate_pps / 1e9)
        bucket.last_ns = now_ns
        self._buckets[host] = bucket
        if len(self._buckets) > cfg.max_sources:
            self._buckets.popitem(last=False)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True


# --- Session-Sender -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    """A packet to send now: its seq, bytes and T1 (Unix ns)."""

    seq: int
    data: bytes
    t1_ns: int


@dataclass(frozen=True, slots=True)
class Reply:
    """A matched reply and the delays it yields (RFC 8762 §4; RFC 7679 §3.4; RFC 2681 §2.4).

    ``fwd_ns`` = T2-T1 and ``bwd_ns`` = T4-T3 are None when they cannot be physical: <= 0
    (RFC 7679 §3.5) or above T4-T1 (a clock fault, named in ``fault``; see ``_compute``);
    ``rtt_net_ns`` = (T4-T1)-(T3-T2) needs no clock sync.
    ``clock_error_ns`` sums both ends' Error Estimates (RFC 7679 §3.7.1). ``stepped`` is True
    if the wall clock stepped during the exchange (RFC 2681 §2.5).
    """

    seq: int
    t1_ns: int
    t2_ns: int
    t3_ns: int
    t4_ns: int
    fwd_ns: int | None
    bwd_ns: int | None
    rtt_net_ns: int
    clock_error_ns: int
    src_synced: bool
    dst_synced: bool
    reflector_seq: int
    sender_ttl: int
    ssid: int
    timestamp_info: TimestampInfo | None
    fault: str | None
    stepped: bool
    sent_wall_ns: int
    t1_kernel: bool = False
    reply_ttl: int | None = None


@dataclass(frozen=True, slots=True)
class Lost:
    """No reply within Tmax (RFC 7680 §2.4)."""

    seq: int
    t1_ns: int
    sent_wall_ns: int


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A further copy of a reply already matched (RFC 7679 §3.4: the first copy counts)."""

    seq: int


@dataclass(frozen=True, slots=True)
class Late:
    """A reply to a packet already declared lost (RFC 7680 §2.6: stays lost)."""

    seq: int


@dataclass(frozen=True, slots=True)
class Malformed:
    """Bytes that did not decode as a reply (counted; RFC 7680 §2.5 counts them lost)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Unmatched:
    """A well-formed reply for no packet of this session (wrong SSID or T1 echo)."""

    seq: int


Event = Reply | Duplicate | Late | Malformed | Unmatched


@dataclass(frozen=True, slots=True)
class SenderStatistics:
    """Counters of one sender session; ``reordered`` per RFC 4737 §3.3.

    ``forward_lost``/``backward_lost`` need a stateful reflector (RFC 8762 §4: its own counter
    tells how many packets arrived); they are estimates from the highest reflector seq seen.
    """

    sent: int
    received: int
    lost: int
    pending: int
    duplicates: int
    late: int
    malformed: int
    unmatched: int
    clock_faults: int
    clock_steps: int
    send_errors: int
    reordered: int
    forward_lost: int | None
    backward_lost: int | None


@dataclass(slots=True)
class _Pending:
    t1_raw: int
    t1_ns: int
    wall_ns: int
    mono_ns: int
    ee: ErrorEstimate
    t1_kernel: bool = False


@dataclass(slots=True)
class _Counts:
    sent: int = 0
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    late: int = 0
    malformed: int = 0
    unmatched: int = 0
    clock_faults: int = 0
    clock_steps: int = 0
    send_errors: int = 0
    reordered: int = 0
    max_seq: int = -1
    reflector_seq_max: int = -1
    done: OrderedDict[int, bool] = field(default_factory=OrderedDict)  # seq -> was received


class SessionSender:
    """One STAMP session from the sender's side (RFC 8762 §4.2).

    Sequence numbers start at 0 and increase by one per packet (§4.2.1). ``size`` is the UDP
    payload length (>= the base packet); ``tlvs`` are sent after the base packet and padded
    with an Extra Padding TLV (RFC 8972 §4.1) up to ``size``. Timestamps are NTP (Z=0).
    """

    def __init__(self, *, ssid: int = 0, key: bytes | None = None, size: int | None = None,
                 tmax_ns: int = 2_000_000_000, tlvs: tuple[Tlv, ...] = (),
                 window: int = 65536) -> None:
        self.ssid, self.key, self.tmax_ns, self.window = ssid, key, tmax_ns, window
        self.base = base_size(key is not None)
        self.size = self.base if size is None else size
        room = self.size - self.base
        # authenticated: TLVs end with an HMAC TLV over each packet's seq (RFC 8972 §4.8)
        self._sign = key is not None and bool(tlvs) and \
            room >= HMAC_TLV_SIZE + len(encode_tlvs(tlvs))
        self.trailer = _trailer(tlvs, signed_room(room, key) if self._sign else room)
        self._next = 0
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._c = _Counts()

    @property
    def next_seq(self) -> int:
        """The sequence number the next packet will carry."""
        return self._next

    def next_packet(self, wall_ns: int, mono_ns: int, error_estimate: ErrorEstimate) -> Sent:
        """Build the next packet with T1 = ``wall_ns``; send it at once."""
        seq, self._next = self._next, (self._next + 1) % _U32
        t1_raw = unix_ns_to_ntp(wall_ns)
        trailer = sign(self.key, seq, self.trailer) if self._sign and self.key else self.trailer
        data = encode_sender(SenderPacket(seq, t1_raw, error_estimate, self.ssid, trailer),
                             self.key)
        self._pending[seq] = _Pending(t1_raw, wall_ns, wall_ns, mono_ns, error_estimate)
        self._c.sent += 1
        return Sent(seq, data, wall_ns)

    def tx_timestamp(self, seq: int, tx_ns: int) -> None:
        """A kernel TX stamp for ``seq`` replaces the user-space T1 in the delays."""
        p = self._pending.get(seq)
        if p is not None:
            p.t1_ns, p.t1_kernel = tx_ns, True

    def receive(self, data: bytes, t4_ns: int, wall_ns: int, mono_ns: int,
                ttl: int | None = None) -> Event:
        """Match a reply received at T4 = ``t4_ns``; ``wall_ns``/``mono_ns`` are read now,
        ``ttl`` is the reply's received TTL/Hop Limit if known. A reply with T4-T1 above Tmax
        is :class:`Late` and its packet stays pending until :meth:`expire` or
        :meth:`give_up` declares it lost (RFC 7680 §2.4), unless the wall clock stepped."""
        try:
            r = decode_reflector(data, self.key)
        except MalformedPacket as exc:
            self._c.malformed += 1
            return Malformed(str(exc))
        p = self._pending.get(r.sender_seq)
        if p is None or p.t1_raw != r.sender_timestamp or r.ssid not in (self.ssid, 0):
            return self._not_pending(r)
        if self.key is not None and r.trailer and not tlvs_verified(self.key, r.seq, r.trailer):
            r = replace(r, trailer=b"")  # TLVs whose HMAC TLV fails are not acted on (§4.8)
        was_stepped = stepped(p.wall_ns, p.mono_ns, wall_ns, mono_ns)
        if not was_stepped and t4_ns - p.t1_ns > self.tmax_ns:
            # After Tmax by its own timestamps: lost (RFC 7680 §2.4), once it expires.
            self._c.late += 1
            return Late(r.sender_seq)
        del self._pending[r.sender_seq]
        self._mark_done(r.sender_seq, True)
        self._c.received += 1
        self._c.reflector_seq_max = max(self._c.reflector_seq_max, r.seq)
        self._note_order(r.sender_seq)
        reply = _compute(r, p, t4_ns, was_stepped, ttl)
        self._c.clock_faults += reply.fault is not None
        self._c.clock_steps += reply.stepped
        return reply

    def _note_order(self, seq: int) -> None:
        """RFC 4737 §3.3: reordered if seq < NextExp (the highest seq received so far + 1)."""
        if seq < self._c.max_seq:
            self._c.reordered += 1
        else:
            self._c.max_seq = seq

    def _not_pending(self, r: ReflectorPacket) -> Event:
        state = self._c.done.get(r.sender_seq)
        if state is True:
            self._c.duplicates += 1
            return Duplicate(r.sender_seq)
        if state is False:
            self._c.late += 1
            return Late(r.sender_seq)
        self._c.unmatched += 1
        return Unmatched(r.sender_seq)

    def expire(self, mono_ns: int) -> list[Lost]:
        """Packets with no reply after Tmax (RFC 7680 §2.4), oldest first."""
        lost: list[Lost] = []
        while self._pending:
            seq, p = next(iter(self._pending.items()))
            if mono_ns - p.mono_ns < self.tmax_ns:
                break
            del self._pending[seq]
            self._mark_done(seq, False)
            self._c.lost += 1
            lost.append(Lost(seq, p.t1_ns, p.wall_ns))
        return lost

    def give_up(self, seq: int) -> Lost | None:
        """Declare ``seq`` lost now (its Tmax has passed); None if it is no longer pending."""
        p = self._pending.pop(seq, None)
        if p is None:
            return None
        self._mark_done(seq, False)
        self._c.lost += 1
        return Lost(seq, p.t1_ns, p.wall_ns)

    def send_failed(self, seq: int) -> None:
        """``seq`` never left (a local send error): not a sample, not loss (STYLE.md §6)."""
        if self._pending.pop(seq, None) is not None:
            self._c.sent -= 1
            self._c.send_errors += 1

    def _mark_done(self, seq: int, received: bool) -> None:
        self._c.done[seq] = received
        if len(self._c.done) > self.window:
            self._c.done.popitem(last=False)

    def statistics(self) -> SenderStatistics:
        c = self._c
        fwd = bwd = None
        if c.reflector_seq_max >= 0:
            arrived = c.reflector_seq_max + 1
            fwd, bwd = c.sent - len(self._pending) - arrived, arrived - c.received
        return SenderStatistics(c.sent, c.received, c.lost, len(self._pending), c.duplicates,
                                c.late, c.malformed, c.unmatched, c.clock_faults, c.clock_steps,
                                c.send_errors, c.reordered, fwd, bwd)


def _trailer(tlvs: tuple[Tlv, ...], room: int) -> bytes:
    body = encode_tlvs(tlvs)
    if room < len(body):
        raise StampConfigError(f"size leaves {room} octets after the base packet, "
                              f"TLVs need {len(body)}")
    rest = room - len(body)
    if rest == 0:
        return body
    if rest < 4:  # too small for a TLV header: plain zero padding (RFC 8762 §4.2.1)
        return body + bytes(rest)
    return body + encode_tlvs([Tlv(TLV_EXTRA_PADDING, bytes(rest - 4))])


def _timestamp_info(trailer: bytes) -> TimestampInfo | None:
    try:
        tlvs = decode_tlvs(trailer)
    except MalformedPacket:
        return None
    for t in tlvs:
        if t.type == TLV_TIMESTAMP_INFO and not t.flags & FLAG_U and len(t.value) >= 4:
            return decode_timestamp_info(t)
    return None


def _compute(r: ReflectorPacket, p: _Pending, t4: int, was_stepped: bool,
             ttl: int | None) -> Reply:
    """Delays of one exchange (RFC 8762 §4; RFC 7679 §3.4-3.7; RFC 2681 §2.4).

    A one-way delay that cannot be physical is a clock fault, named in ``fault`` and given as
    None: one <= 0 (RFC 7679 §3.5), one above T4-T1 (longer than the whole exchange on the
    sender's own clock: the ends' clocks disagree by more than the round trip), or both when
    the ends' error estimates add up to more than a day (``ixmeter.core.rules.CLOCK_ERROR_MAX_NS``,
    RFC 7679 §3.7.3). A network RTT below 0 or above T4-T1 (T3 before T2) is a fault too."""
    t1 = p.t1_ns
    t2 = timestamp_to_unix_ns(r.receive_timestamp, r.error_estimate.ptp, t1)
    t3 = timestamp_to_unix_ns(r.timestamp, r.error_estimate.ptp, t1)
    fwd, bwd, rtt_net, span = t2 - t1, t4 - t3, (t4 - t1) - (t3 - t2), t4 - t1
    clock_error = p.ee.ns + r.error_estimate.ns
    faults = [f"{name} one-way delay {d} ns <= 0 (RFC 7679 §3.5)"
              for name, d in (("forward", fwd), ("backward", bwd)) if d <= 0]
    faults += [f"{name} one-way delay {d} ns > T4-T1 {span} ns, the whole exchange"
               for name, d in (("forward", fwd), ("backward", bwd)) if d > 0 and d > span]
    if clock_error > CLOCK_ERROR_MAX_NS:
        faults.append(f"clock error estimate {clock_error} ns is over a day (RFC 7679 §3.7.3)")
    if rtt_net < 0:
        faults.append(f"network RTT {rtt_net} ns < 0: T3 precedes T2 or T4 precedes T1")
    elif rtt_net > span:
        faults.append(f"network RTT {rtt_net} ns > T4-T1 {span} ns: T3 precedes T2")
    one_way = clock_error <= CLOCK_ERROR_MAX_NS
    info = _timestamp_info(r.trailer)
    dst_synced = r.error_estimate.synced and not (info and info.sync_src_in == SYNC_FREE_RUNNING)
    return Reply(
        seq=r.sender_seq, t1_ns=t1, t2_ns=t2, t3_ns=t3, t4_ns=t4,
        fwd_ns=fwd if one_way and 0 < fwd <= span else None,
        bwd_ns=bwd if one_way and 0 < bwd <= span else None,
        rtt_net_ns=rtt_net, clock_error_ns=p.ee.ns + r.error_estimate.ns,
        src_synced=p.ee.synced, dst_synced=bool(dst_synced), reflector_seq=r.seq,
        sender_ttl=r.sender_ttl, ssid=r.ssid, timestamp_info=info,
        fault="; ".join(faults) or None, stepped=was_stepped, sent_wall_ns=p.wall_ns,
        t1_kernel=p.t1_kernel, reply_ttl=ttl)

