"""Packet rewrite and ICMP error building, checked against scapy's independent decoder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, UDP, IPerror, UDPerror
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)

from ixmeter.core.errors import MalformedPacket
from testbed.packets import (
    checksum,
    icmpv6_checksum,
    packed,
    parse,
    time_exceeded,
    with_ttl,
)

HOP4, HOP6 = packed("198.19.0.1"), packed("2001:2:0:f000::1")


def _udp4(ttl: int = 1) -> bytes:
    return bytes(IP(src="198.18.1.10", dst="198.18.65.10", ttl=ttl) / UDP(sport=4000, dport=33434)
                 / (b"x" * 32))


def _echo6(hlim: int = 1) -> bytes:
    return bytes(IPv6(src="2001:2:0:1000::10", dst="2001:2:0:2000::10", hlim=hlim)
                 / ICMPv6EchoRequest(id=7, seq=1, data=b"y" * 16))


def test_checksum_rfc1071_example() -> None:
    # RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2; checksum is its complement.
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2


def test_parse_v4_and_v6() -> None:
    v4, v6 = parse(_udp4(5)), parse(_echo6(9))
    assert (v4.version, v4.ttl, v4.proto, v4.dst) == (4, 5, 17, packed("198.18.65.10"))
    assert (v6.version, v6.ttl, v6.proto, v6.dst) == (6, 9, 58, packed("2001:2:0:2000::10"))
    assert not v4.is_icmp_error
    assert not v6.is_icmp_error


@pytest.mark.parametrize("ttl", [1, 64, 255])
def test_with_ttl_keeps_valid_v4_checksum(ttl: int) -> None:
    out = with_ttl(_udp4(200), ttl)
    pkt = IP(out)
    assert pkt.ttl == ttl
    assert checksum(out[:20]) == 0  # a valid header sums to 0xffff (RFC 791 §3.1)


def test_with_ttl_v6_sets_hop_limit() -> None:
    assert IPv6(with_ttl(_echo6(64), 3)).hlim == 3


def test_time_exceeded_v4_decodes_with_valid_checksums() -> None:
    orig = _udp4(1)
    reply = time_exceeded(orig, HOP4)
    assert reply is not None
    pkt = IP(reply)
    assert (pkt.src, pkt.dst, pkt[ICMP].type, pkt[ICMP].code) == ("198.19.0.1", "198.18.1.10",
                                                                  11, 0)
    assert checksum(reply[:20]) == 0
    assert checksum(reply[20:]) == 0
    assert pkt[IPerror].dst == "198.18.65.10"
    assert pkt[UDPerror].dport == 33434


def test_time_exceeded_v6_checksum_matches_scapy() -> None:
    orig = _echo6(1)
    reply = time_exceeded(orig, HOP6)
    assert reply is not None
    pkt = IPv6(reply)
    te = pkt[ICMPv6TimeExceeded]
    assert (pkt.src, pkt.dst, te.type, te.code) == ("2001:2:0:f000::1", "2001:2:0:1000::10", 3, 0)
    ours = te.cksum
    del te.cksum
    assert IPv6(bytes(pkt))[ICMPv6TimeExceeded].cksum == ours
    assert icmpv6_checksum(HOP6, packed("2001:2:0:1000::10"), reply[40:]) == 0
    assert reply[48:] == orig  # the whole invoking packet fits in 1280 bytes (RFC 4443 §3.3)


def test_no_error_about_an_error() -> None:
    err4 = time_exceeded(_udp4(1), HOP4)
    assert err4 is not None
    assert time_exceeded(with_ttl(err4, 1), HOP4) is None
    err6 = time_exceeded(_echo6(1), HOP6)
    assert err6 is not None
    assert time_exceeded(err6, HOP6) is None


def test_v6_extension_headers_are_walked() -> None:
    err = time_exceeded(_echo6(1), HOP6)
    assert err is not None
    pkt = IPv6(err)  # an ICMPv6 error, re-sent behind a hop-by-hop options header
    wrapped = bytes(IPv6(src=pkt.src, dst=pkt.dst, hlim=1) / IPv6ExtHdrHopByHop()
                    / pkt.payload)
    assert parse(wrapped).is_icmp_error
    assert time_exceeded(wrapped, HOP6) is None  # an error about an error is never sent
    later = bytes(IPv6(src="2001:2:0:1000::10", dst="2001:2:0:2000::10", hlim=1)
                  / IPv6ExtHdrFragment(offset=100, m=0, nh=17) / (b"u" * 16))
    assert not parse(later).first_fragment
    assert time_exceeded(later, HOP6) is None


def test_long_v4_quote_capped_at_576() -> None:
    big = bytes(IP(src="198.18.1.10", dst="198.18.65.10", ttl=1) / UDP() / (b"z" * 1400))
    reply = time_exceeded(big, HOP4)
    assert reply is not None
    assert len(reply) == 576


def test_family_mismatch_rejected() -> None:
    with pytest.raises(ValueError, match="IPv4"):
        time_exceeded(_udp4(1), HOP6)


@pytest.mark.parametrize("data", [b"", b"\x45", b"\x45" + b"\0" * 10, b"\x60" + b"\0" * 20,
                                  b"\x70" * 40, bytes(IP(ttl=3) / UDP())[:-1] + b""])
def test_malformed_rejected(data: bytes) -> None:
    if data and len(data) >= 28 and data[0] == 0x45:
        data = data[:2] + b"\xff\xff" + data[4:]  # total length beyond the buffer
    with pytest.raises(MalformedPacket):
        parse(data)


@settings(deadline=None)  # no per-example deadline on the shared CI machine
@given(st.binary(max_size=80))
def test_parse_any_bytes_decodes_or_raises_malformed(data: bytes) -> None:
    try:
        view = parse(data)
    except MalformedPacket:
        return
    assert view.version in (4, 6)
