"""ICMP/ICMPv6 echo codec: RFC 1071 checksum, RFC 792 / RFC 4443 §4 echo layout, errors."""

from __future__ import annotations

import contextlib
import struct

import icmplib
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ixmeter.core.errors import MalformedPacket
from probes.icmp import codec

# RFC 1071 §3 example: words 0001 f203 f4f5 f6f7 sum to ddf2 (one's complement sum), checksum 220d
RFC1071 = bytes.fromhex("0001f203f4f5f6f7")


def test_checksum_rfc1071_example() -> None:
    assert codec.checksum(RFC1071) == 0x220D


def test_checksum_odd_length_pads_with_zero() -> None:
    assert codec.checksum(b"\x01") == codec.checksum(b"\x01\x00")


def test_checksum_matches_icmplib() -> None:
    data = codec.encode_echo(0x1234, 7, codec.payload_for(1, 2, 64))
    zeroed = data[:2] + b"\0\0" + data[4:]
    assert codec.checksum(zeroed) == icmplib.sockets.ICMPSocket._checksum(None, zeroed)


@pytest.mark.parametrize(("v6", "is_request", "kind"), [
    (False, True, 8), (False, False, 0), (True, True, 128), (True, False, 129)])
def test_echo_round_trip(v6: bool, is_request: bool, kind: int) -> None:
    payload = codec.payload_for(0xCAFE, 42, 64)
    pseudo = codec.v6_pseudo_header(bytes(15) + b"\1", bytes(15) + b"\1", 64) if v6 else b""
    data = codec.encode_echo(0xBEEF, 42, payload, v6=v6, request=is_request, pseudo=pseudo)
    assert len(data) == 64
    assert data[0] == kind
    echo = codec.decode_icmp(data, v6=v6, pseudo=pseudo)
    assert echo == codec.Echo(kind, 0, 0xBEEF, 42, payload, True)
    assert codec.decode_token(echo.payload) == codec.Token(0xCAFE, 42)


def test_v6_without_pseudo_header_leaves_checksum_to_kernel() -> None:
    data = codec.encode_echo(1, 2, codec.payload_for(0, 0, 24), v6=True)
    assert data[2:4] == b"\0\0"


def test_bad_checksum_is_flagged_not_raised() -> None:
    data = bytearray(codec.encode_echo(1, 2, codec.payload_for(0, 0, 32), request=False))
    data[-1] ^= 0xFF
    echo = codec.decode_icmp(bytes(data))
    assert isinstance(echo, codec.Echo)
    assert not echo.checksum_ok


def _ipv4(payload: bytes, proto: int = 1, ihl: int = 5) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(payload), 0, 0, 64, proto, 0,
                       b"\x7f\0\0\1", b"\x7f\0\0\1") + bytes((ihl - 5) * 4) + payload


def test_strip_ipv4_and_time_exceeded_quoting_our_echo() -> None:
    request = codec.encode_echo(7, 9, codec.payload_for(5, 9, 40))
    err = codec.encode_echo(0, 0, _ipv4(request[:16]), request=False)  # type 0 placeholder
    err = bytes([codec.ICMP_TIME_EXCEEDED]) + err[1:]
    err = err[:2] + b"\0\0" + err[4:]
    err = err[:2] + codec.checksum(err).to_bytes(2, "big") + err[4:]
    got = codec.decode_icmp(codec.strip_ipv4(_ipv4(err)))
    assert isinstance(got, codec.IcmpError)
    assert (got.type, got.quoted.ident, got.quoted.seq) == (11, 7, 9)


@pytest.mark.parametrize(("data", "v6"), [
    (b"", False), (b"\x08\0\0", False), (bytes([13]) + bytes(7), False),  # timestamp: not ours
    (bytes([135]) + bytes(7), True),  # neighbour solicitation
    (bytes([11, 0, 0, 0]) + bytes(4) + b"\x45", False),  # truncated quote
    (bytes([3, 0, 0, 0]) + bytes(4) + bytes(48), True),  # quote is not IPv6
])
def test_malformed(data: bytes, v6: bool) -> None:
    with pytest.raises(MalformedPacket):
        codec.decode_icmp(data, v6=v6)


@pytest.mark.parametrize("data", [b"", bytes(19), b"\x60" + bytes(30), _ipv4(b"", proto=17),
                                  b"\x4f" + bytes(30)])
def test_strip_ipv4_malformed(data: bytes) -> None:
    with pytest.raises(MalformedPacket):
        codec.strip_ipv4(data)


def test_token_requires_magic() -> None:
    with pytest.raises(MalformedPacket):
        codec.decode_token(b"XXXX" + bytes(12))
    with pytest.raises(MalformedPacket):
        codec.decode_token(b"IXMP")


def test_payload_below_minimum_size() -> None:
    with pytest.raises(ValueError, match="minimum"):
        codec.payload_for(0, 0, codec.MIN_SIZE - 1)


@given(st.binary(max_size=200), st.booleans())
def test_decode_any_bytes_decodes_or_raises_malformed(data: bytes, v6: bool) -> None:
    try:
        codec.decode_icmp(data, v6=v6)
        codec.decode_token(data)
    except MalformedPacket:
        pass
    with contextlib.suppress(MalformedPacket):
        codec.strip_ipv4(data)


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1),
       st.integers(0, 2**64 - 1), st.integers(codec.MIN_SIZE, 1500), st.booleans())
def test_round_trip_property(ident: int, seq: int, cookie: int, token: int, size: int,
                             v6: bool) -> None:
    payload = codec.payload_for(cookie, token, size)
    pseudo = codec.v6_pseudo_header(bytes(16), bytes(16), size) if v6 else b""
    data = codec.encode_echo(ident, seq, payload, v6=v6, pseudo=pseudo)
    echo = codec.decode_icmp(data, v6=v6, pseudo=pseudo)
    assert isinstance(echo, codec.Echo)
    assert (echo.ident, echo.seq, echo.checksum_ok) == (ident, seq, True)
    assert codec.decode_token(echo.payload) == codec.Token(cookie, token)


def test_port_unreachable_for_a_udp_packet_is_foreign_not_malformed() -> None:
    """A STAMP test to a closed port is answered with an ICMP port unreachable quoting UDP."""
    udp = struct.pack("!HHHH", 40000, 862, 52, 0) + bytes(44)
    err = bytes([codec.ICMP_DEST_UNREACH, 3, 0, 0]) + bytes(4) + _ipv4(udp, proto=17)[:28]
    got = codec.decode_icmp(err)
    assert got == codec.ForeignError(codec.ICMP_DEST_UNREACH, 3, 17)
    v6 = bytes([codec.ICMPV6_DEST_UNREACH, 4, 0, 0]) + bytes(4) + b"\x60" + bytes(5) + \
        b"\x11\x40" + bytes(32) + udp[:8]
    assert codec.decode_icmp(v6, v6=True) == codec.ForeignError(codec.ICMPV6_DEST_UNREACH, 4, 17)
