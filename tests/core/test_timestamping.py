"""ixmeter.core.timestamping on real loopback sockets
(Documentation/networking/timestamping.rst)."""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from ixmeter.core import timestamping as ts

ADDRS = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]


@pytest.fixture(params=ADDRS, ids=["v4", "v6"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[socket.socket, socket.socket]]:
    family, addr = request.param
    a = socket.socket(family, socket.SOCK_DGRAM)
    b = socket.socket(family, socket.SOCK_DGRAM)
    a.bind((addr, 0))
    b.bind((addr, 0))
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_rx_timestamp_and_ttl(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    assert ts.enable_rx_timestamps(b)
    assert ts.enable_rx_ttl(b)
    before = time.time_ns()
    a.sendto(b"hello", b.getsockname())
    select.select([b], [], [], 2.0)
    data, _addr, rx_ns, ttl = ts.recvmsg_ts(b, 100)
    after = time.time_ns()
    assert data == b"hello"
    assert rx_ns is not None
    assert before <= rx_ns <= after
    assert ttl == 64


def test_tx_timestamps_keyed_by_opt_id(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    assert ts.enable_tx_timestamps(a)
    before = time.time_ns()
    for _ in range(3):
        a.sendto(b"x", b.getsockname())
    got = [ts.read_tx_timestamp(a) for _ in range(3)]
    assert [g[0] for g in got if g] == [0, 1, 2]  # loopback stamps synchronously in sendto
    assert all(g and before <= g[1] <= time.time_ns() for g in got)
    assert ts.read_tx_timestamp(a) is None


def test_no_timestamp_without_enabling(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.sendto(b"x", b.getsockname())
    select.select([b], [], [], 2.0)
    _data, _addr, rx_ns, ttl = ts.recvmsg_ts(b)
    assert rx_ns is None
    assert ttl is None


def test_parse_scm_timestamping_falls_back_to_hardware() -> None:
    three = struct.pack("=qqqqqq", 0, 0, 0, 0, 5, 7)
    assert ts.rx_timestamp_ns([(socket.SOL_SOCKET, ts.SCM_TIMESTAMPING, three)]) == 5_000_000_007
    sw = struct.pack("=qqqqqq", 1, 2, 0, 0, 5, 7)
    assert ts.rx_timestamp_ns([(socket.SOL_SOCKET, ts.SCM_TIMESTAMPING, sw)]) == 1_000_000_002
    assert ts.rx_timestamp_ns([(socket.SOL_SOCKET, ts.SCM_TIMESTAMPNS, b"\0")]) is None


def test_tx_parse_needs_both_cmsgs() -> None:
    stamp = (socket.SOL_SOCKET, ts.SCM_TIMESTAMPING, struct.pack("=qqqqqq", 3, 4, 0, 0, 0, 0))
    err = (socket.IPPROTO_IP, ts.IP_RECVERR,
           struct.pack("=IBBBBII", 42, ts.SO_EE_ORIGIN_TIMESTAMPING, 0, 0, 0, 0, 9) + b"\0" * 16)
    assert ts.tx_timestamp_from_ancdata([stamp, err]) == (9, 3_000_000_004)
    assert ts.tx_timestamp_from_ancdata([stamp]) is None
