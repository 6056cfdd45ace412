"""The shared-socket pinger on real loopback sockets, and in a network namespace of its own.

Loss comes from a namespace whose kernel ignores echo requests; duplicates, late, stray and
malformed replies are forged on loopback by a second raw socket (raw(7) delivers every incoming
ICMP message to every raw ICMP socket, RFC 792 echo layout).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio

from ixmeter.core.errors import PermissionProblem
from ixmeter.core.record import ErrorKind, Status, TimestampSource
from probes.icmp import codec
from probes.icmp.pinger import Pinger, open_icmp_socket, open_pinger
from probes.icmp.session import Outcome

LOOPBACK = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
CLONE_NEWNET = 0x40000000
pytestmark = pytest.mark.root


@contextlib.contextmanager
def netns() -> Iterator[str]:
    """A throwaway network namespace with ``lo`` up; removed on exit."""
    name = f"ixm-h3-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@contextlib.contextmanager
def inside(name: str) -> Iterator[None]:
    """Run the calling thread in namespace ``name`` (sockets made here stay in it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        assert libc.setns(target, CLONE_NEWNET) == 0
        yield
    finally:
        assert libc.setns(home, CLONE_NEWNET) == 0
        os.close(home)
        os.close(target)


@pytest.mark.parametrize(("family", "dst"), LOOPBACK, ids=["v4", "v6"])
async def test_ping_loopback_kernel_timestamps(family: int, dst: str) -> None:
    outcomes: list[Outcome] = []
    async with open_pinger(family, outcomes.append) as pinger:
        for _ in range(3):
            pinger.send(dst, 64, 1_500_000_000)
            await trio.sleep(0.01)
        await pinger.drain()
        assert (await pinger.ping(dst, 64, 100_000_000)).token > outcomes[-1].token
    for o in outcomes:
        assert o.status is Status.RECEIVED
        assert o.ts_source is TimestampSource.KERNEL
        assert o.rtt_ns is not None
        assert 0 < o.rtt_ns < 20_000_000
        assert o.reply_ttl == 64
        assert o.dup == 0
    assert len({o.token for o in outcomes}) == 3
    assert pinger.rcvbuf >= 4 << 20  # SO_RCVBUFFORCE as root, past net.core.rmem_max


async def test_many_targets_share_one_socket() -> None:
    got: list[Outcome] = []
    async with open_pinger(socket.AF_INET, got.append) as pinger:
        for i in range(200):
            pinger.send(f"127.0.0.{1 + i % 50}", 64, 2_000_000_000, ctx=i)
        assert pinger.in_flight() == 200
        await pinger.drain()
    assert sorted(o.ctx for o in got) == list(range(200))
    assert {o.status for o in got} == {Status.RECEIVED}
    assert pinger.statistics().late == 0


async def test_two_pingers_never_take_each_others_replies() -> None:
    a_got: list[Outcome] = []
    b_got: list[Outcome] = []
    async with open_pinger(socket.AF_INET, a_got.append) as a, \
            open_pinger(socket.AF_INET, b_got.append) as b:
        b.session.ident = a.session.ident  # even with the same ICMP identifier (as PIDs collide)
        for _ in range(20):
            a.send("127.0.0.1", 64, 1_000_000_000)
            b.send("127.0.0.1", 64, 1_000_000_000)
        await a.drain()
        await b.drain()
    assert len(a_got) == len(b_got) == 20
    assert all(o.status is Status.RECEIVED and o.dup == 0 for o in a_got + b_got)


def _forge(family: int, dst: str, echo: bytes) -> None:
    proto = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
    with socket.socket(family, socket.SOCK_RAW, proto) as s:
        s.sendto(echo, (dst, 0))


def _reply(p: Pinger, token: int, size: int = 64, corrupt: bool = False) -> bytes:
    payload = p.session.payload(token, size)
    msg = bytearray(codec.encode_echo(p.session.ident, token & 0xFFFF, payload, v6=p.v6,
                                      request=False))
    if corrupt:
        msg[-1] ^= 0xFF
    return bytes(msg)


@pytest.mark.parametrize(("family", "dst"), LOOPBACK, ids=["v4", "v6"])
async def test_duplicates_late_and_stray_counted_apart(family: int, dst: str) -> None:
    """Copies within the hold are the record's ``dup`` (and local duplicates); a copy after
    the record was handed over is a local duplicate only; a reply to nothing is a stray."""
    got: list[Outcome] = []
    async with open_pinger(family, got.append, hold_s=0.3) as p:
        token = p.send(dst, 64, 3_000_000_000)
        await trio.sleep(0.1)
        _forge(family, dst, _reply(p, token))
        _forge(family, dst, _reply(p, token))
        await trio.sleep(0.5)  # past the hold: the record is out
        assert len(got) == 1
        _forge(family, dst, _reply(p, token))
        _forge(family, dst, _reply(p, token + 10_000))
        await trio.sleep(0.05)
    assert got[0].status is Status.RECEIVED
    assert got[0].dup == 2
    stats = p.statistics()
    assert (stats.duplicates, stats.late, stats.stray) == (3, 0, 1)


async def test_a_reply_after_tmax_is_late_and_the_probe_lost() -> None:
    with netns() as name:
        _silence(name, socket.AF_INET)
        with inside(name):
            pinger = Pinger(socket.AF_INET)
            got = await _run(pinger, [lambda p, t: None], tmax_ns=100_000_000,
                             after=lambda p, t: _forge(socket.AF_INET, "127.0.0.1",
                                                       _reply(p, t)))
    assert got[0].status is Status.LOST
    assert pinger.statistics().late == 1


async def test_an_answered_probe_is_handed_over_at_once_not_at_tmax() -> None:
    """The issue's finding: results were emitted only at Tmax, so a ``kill -9`` lost the last
    Tmax of answered probes too."""
    async with open_pinger(socket.AF_INET) as p:
        with trio.fail_after(2):  # Tmax is 30 s
            got = await p.ping("127.0.0.1", 64, 30_000_000_000)
    assert got.status is Status.RECEIVED


async def test_malformed_reply_is_an_error_not_a_sample() -> None:
    with netns() as name:
        _silence(name, socket.AF_INET)
        with inside(name):
            pinger = Pinger(socket.AF_INET)
            got = await _run(pinger, [
                lambda p, t: _forge(socket.AF_INET, "127.0.0.1", _reply(p, t, corrupt=True)),
                lambda p, t: _forge(socket.AF_INET, "127.0.0.1", _reply(p, t)),
                lambda p, t: _forge(socket.AF_INET, "127.0.0.1", _reply(p, t, size=40)),
            ])
    assert [o.error for o in got] == [ErrorKind.MALFORMED_REPLY, None, ErrorKind.MALFORMED_REPLY]
    assert got[1].status is Status.RECEIVED


SILENT: dict[int, str] = {socket.AF_INET: "net.ipv4.icmp_echo_ignore_all=1",
          socket.AF_INET6: "net.ipv6.icmp.echo_ignore_all=1"}


def _silence(name: str, family: int) -> None:
    subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw", SILENT[family]], check=True)


async def _run(pinger: Pinger, forgers: list[Callable[[Pinger, int], None]], *,
               tmax_ns: int = 1_000_000_000,
               after: Callable[[Pinger, int], None] | None = None) -> list[Outcome]:
    """One probe per forger to 127.0.0.1; each forger answers its probe, ``after`` once all
    reached Tmax; outcomes in order."""
    got: list[Outcome] = []
    pinger.on_outcome = got.append
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pinger.receive_loop)
            nursery.start_soon(pinger.expiry_loop)
            dst = "::1" if pinger.v6 else "127.0.0.1"
            tokens = [pinger.send(dst, 64, tmax_ns) for _ in forgers]
            for forger, token in zip(forgers, tokens, strict=True):
                forger(pinger, token)
            await pinger.drain()
            for token in tokens if after else ():
                after(pinger, token)  # type: ignore[misc]
            await trio.sleep(0.05 if after else 0)
            nursery.cancel_scope.cancel()
    finally:
        pinger.close()
    return sorted(got, key=lambda o: o.token)


@pytest.mark.parametrize(("family", "dst"), LOOPBACK, ids=["v4", "v6"])
async def test_loss_is_data_in_a_silent_namespace(family: int, dst: str) -> None:
    with netns() as name:
        _silence(name, family)
        with inside(name):
            pinger = Pinger(family)
        got = await _run(pinger, [lambda p, t: None] * 3)
    assert [o.status for o in got] == [Status.LOST] * 3
    assert all(o.rtt_ns is None for o in got)


def test_send_error_is_an_error_result() -> None:
    with netns() as name:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "down"], check=True)
        with inside(name):
            pinger = Pinger(socket.AF_INET)
        got: list[Outcome] = []
        pinger.on_outcome = got.append
        pinger.send("198.18.0.1", 64, 100_000_000)  # no route in an empty namespace
        pinger.close()
    assert got[0].status is Status.ERROR
    assert got[0].error is ErrorKind.SEND_ERROR
    assert pinger.statistics().send_errors == 1


def test_datagram_icmp_refused_here_names_the_sysctl() -> None:
    with open("/proc/sys/net/ipv4/ping_group_range") as f:
        low, high = (int(x) for x in f.read().split())
    if low <= os.getgid() <= high:
        pytest.skip("datagram ICMP is allowed on this host")
    with pytest.raises(PermissionProblem, match="ping_group_range"):
        open_icmp_socket(socket.AF_INET, "dgram")


async def test_size_below_the_codec_minimum_is_a_send_error_not_a_crash() -> None:
    """The issue's finding: an ICMP size of 14-23 raised ValueError at the first packet."""
    async with open_pinger(socket.AF_INET) as pinger:
        got = await pinger.ping("127.0.0.1", codec.MIN_SIZE - 4, 200_000_000)
    assert got.status is Status.ERROR
    assert got.error is ErrorKind.SEND_ERROR
    assert "below the minimum" in (got.error_detail or "")


def _allow_datagram_icmp() -> None:
    Path("/proc/sys/net/ipv4/ping_group_range").write_text("0 2147483647")


@pytest.mark.parametrize(("family", "dst"), LOOPBACK, ids=["v4", "v6"])
async def test_datagram_icmp_where_ping_group_range_allows_it(family: int, dst: str) -> None:
    """Unprivileged ICMP (SOCK_DGRAM): the kernel owns the identifier, replies still match by
    the token in the echo data. ``ping_group_range`` is per network namespace."""
    with netns() as name:
        with inside(name):  # /proc/sys/net is the calling thread's namespace's
            _allow_datagram_icmp()
        with inside(name):
            pinger = Pinger(family, mode="dgram")
        assert not pinger.raw
        got = await _run(pinger, [lambda p, t: None] * 3)
    assert [o.status for o in got] == [Status.RECEIVED] * 3


@pytest.mark.parametrize(("family", "dst"), LOOPBACK, ids=["v4", "v6"])
async def test_port_unreachable_of_another_protocol_is_not_a_malformed_stray(
        family: int, dst: str) -> None:
    """The issue's finding: STAMP to a closed port made the pinger count its ICMP port
    unreachables as ``malformed_stray`` local drops."""
    pinger = Pinger(family, mode="raw")
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((dst, 0))
            port = udp.getsockname()[1]
        with socket.socket(family, socket.SOCK_DGRAM) as sender:
            sender.sendto(bytes(44), (dst, port))  # nobody listens there now
        with trio.move_on_after(1):
            while not pinger.statistics().foreign:
                await trio.lowlevel.wait_readable(pinger.sock)
                pinger._drain_all()
    finally:
        pinger.close()
    assert pinger.statistics().malformed_stray == 0
    assert pinger.statistics().foreign[socket.IPPROTO_UDP] == 1
