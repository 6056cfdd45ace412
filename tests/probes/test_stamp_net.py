"""STAMP over real loopback sockets (127.0.0.1 and ::1): sender <-> reflector, stateful,
stateless, authenticated, wrong key, rate limit, malformed input; the Result mapping; the CLI."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from ixmeter.core.errors import IxmeterError
from ixmeter.core.record import ErrorKind, Method, Status, TimestampSource
from probes.clock import ClockStatus
from probes.methods.stamp import StampTarget, open_stamp_probe, run_session, to_result
from probes.reflector_cli import read_keys
from probes.stamp.codec import ErrorEstimate
from probes.stamp.net import open_udp, serve_reflector
from probes.stamp.session import (
    Lost,
    ReflectorConfig,
    Reply,
    SessionReflector,
    SessionSender,
)

HOSTS = ["127.0.0.1", "::1"]
KEY = b"0123456789abcdef0123456789abcdef"
OTHER = b"fedcba9876543210fedcba9876543210"


def _synced() -> ClockStatus:
    return ClockStatus(True, 200_000, 50_000, "test")


@asynccontextmanager
async def _reflector(host: str, **config: object) -> AsyncIterator[tuple[int, SessionReflector]]:
    sock, _info = open_udp(host, 0)
    reflector = SessionReflector(ReflectorConfig(**config))  # type: ignore[arg-type]
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_reflector, sock, reflector, None, _synced)
            yield sock.getsockname()[1], reflector
            nursery.cancel_scope.cancel()
    finally:
        sock.close()


def _target(host: str, port: int, **kw: object) -> StampTarget:
    base: dict[str, object] = {"probe_id": "p1", "src_site": "cs", "src_carrier": "ct",
                               "dst_site": "zz", "dst_carrier": "cu", "dst_addr": host,
                               "port": port, "tmax_ns": 2_000_000_000}
    base.update(kw)
    return StampTarget(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize(("stateful", "key", "size"), [(True, None, 44), (False, None, 64),
                                                       (True, KEY, 112), (False, KEY, 140)])
async def test_loopback_session(host: str, stateful: bool, key: bytes | None, size: int) -> None:
    async with _reflector(host, stateful=stateful, key=key) as (port, reflector):
        results = await run_session(_target(host, port, key=key, size=size), 8, 0.002,
                                    status=_synced)
    assert [r.seq for r in results] == list(range(8))
    for r in results:
        assert r.status is Status.RECEIVED, r
        assert r.method is Method.STAMP
        assert r.type_p.key() == f"udp/v{6 if ':' in host else 4}/{size}/dscp0/{port}"
        assert r.rtt_ns is not None
        assert 0 < r.rtt_ns < 2_000_000_000
        assert r.fwd_ns is not None
        assert r.bwd_ns is not None
        assert r.fwd_ns + r.bwd_ns >= r.rtt_ns  # RTT_net excludes the turnaround
        assert r.clock_error_ns == 2 * ErrorEstimate.from_ns(200_000, True).ns
        assert r.src_synced
        assert r.dst_synced
        assert r.ts_source is TimestampSource.KERNEL
        assert r.reply_ttl == 64
    st = reflector.statistics()
    assert (st.received, st.reflected, st.sessions) == (8, 8, 1 if stateful else 0)


@pytest.mark.parametrize("host", HOSTS)
async def test_wrong_key_is_dropped_and_counted(host: str) -> None:
    async with _reflector(host, key=KEY) as (port, reflector):
        results = await run_session(_target(host, port, key=b"not the key", size=112,
                                            tmax_ns=150_000_000), 4, 0.001)
    assert [r.status for r in results] == [Status.LOST] * 4
    assert reflector.statistics().bad_hmac == 4
    assert reflector.statistics().reflected == 0


async def test_rate_limit_on_loopback() -> None:
    async with _reflector("127.0.0.1", rate_pps=0.01, burst=3) as (port, reflector):
        results = await run_session(_target("127.0.0.1", port, tmax_ns=150_000_000), 10, 0.001)
    assert sum(r.status is Status.RECEIVED for r in results) == 3
    assert reflector.statistics().rate_limited == 7


async def test_reflector_keeps_serving_after_malformed() -> None:
    async with _reflector("127.0.0.1") as (port, reflector):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as junk:
            for payload in (b"", b"x" * 5, bytes(44), b"\xff" * 13):
                junk.sendto(payload, ("127.0.0.1", port))
            # a TWAMP-Light sender's 14 octets still get the 44-octet base packet
            junk.sendto(bytes.fromhex("00000001E5A1B2C3800000008001"), ("127.0.0.1", port))
            junk.settimeout(2.0)
            with trio.fail_after(5):
                reply = await trio.to_thread.run_sync(junk.recv, 2048)
        assert len(reply) == 44
        results = await run_session(_target("127.0.0.1", port), 3, 0.001)
    assert all(r.status is Status.RECEIVED for r in results)
    assert reflector.statistics().malformed == 4


async def test_concurrent_measure_calls_share_one_session() -> None:
    async with _reflector("::1") as (port, _r), \
            open_stamp_probe(_target("::1", port), status=_synced) as probe:
        out = []

        async def one() -> None:
            out.append(await probe.measure())

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(one)
        assert sorted(r.seq for r in out) == list(range(20))
        assert all(r.status is Status.RECEIVED for r in out)
        assert probe.statistics().received == 20


async def test_unreachable_reflector_is_loss_not_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but never answering
        results = await run_session(_target("127.0.0.1", port, tmax_ns=100_000_000), 2, 0.001)
    assert [r.status for r in results] == [Status.LOST, Status.LOST]
    assert all(r.rtt_ns is None for r in results)


async def test_port_unreachable_does_not_kill_the_session() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = await run_session(_target("127.0.0.1", port, tmax_ns=100_000_000), 3, 0.02)
    assert all(r.status in (Status.LOST, Status.ERROR) for r in results)
    assert all(r.error in (None, ErrorKind.SEND_ERROR) for r in results)


# --- Result mapping (pure) ------------------------------------------------------------------


def _reply(**kw: object) -> Reply:
    base: dict[str, object] = dict(
        seq=3, t1_ns=10, t2_ns=20, t3_ns=30, t4_ns=45, fwd_ns=10, bwd_ns=15, rtt_net_ns=25,
        clock_error_ns=7, src_synced=True, dst_synced=False, reflector_seq=3, sender_ttl=64,
        ssid=1, timestamp_info=None, fault=None, stepped=False, sent_wall_ns=10, t1_kernel=True,
        reply_ttl=60)
    base.update(kw)
    return Reply(**base)  # type: ignore[arg-type]


SENT = 1_800_000_000 * 10**9  # a send time (2027)


def test_to_result_mapping() -> None:
    t = _target("192.0.2.9", 862, size=64, dscp=46)
    ok = to_result(t, _reply(), 3, SENT, rx_kernel=True)
    assert (ok.status, ok.rtt_ns, ok.fwd_ns, ok.bwd_ns, ok.clock_error_ns) == (
        Status.RECEIVED, 25, 10, 15, 7)
    assert (ok.src_synced, ok.dst_synced, ok.ts_source, ok.error) == (
        True, False, TimestampSource.KERNEL, None)
    assert ok.type_p.key() == "udp/v4/64/dscp46/862"
    fault = to_result(t, _reply(fwd_ns=None, fault="forward <= 0"), 3, SENT, rx_kernel=True)
    assert (fault.status, fault.rtt_ns, fault.fwd_ns, fault.error) == (
        Status.RECEIVED, 25, None, ErrorKind.CLOCK_FAULT)
    neg = to_result(t, _reply(rtt_net_ns=-5, fault="negative"), 3, SENT, rx_kernel=False)
    assert (neg.status, neg.rtt_ns, neg.error, neg.ts_source) == (
        Status.ERROR, None, ErrorKind.CLOCK_FAULT, TimestampSource.USER)
    step = to_result(t, _reply(stepped=True), 3, SENT, rx_kernel=True)
    assert (step.status, step.error) == (Status.ERROR, ErrorKind.CLOCK_STEP)
    lost = to_result(t, Lost(3, 10, 10), 3, SENT, rx_kernel=True)
    assert (lost.status, lost.rtt_ns) == (Status.LOST, None)
    err = to_result(t, "send failed: [Errno 105] No buffer space", 4, SENT + 1, rx_kernel=True)
    assert (err.status, err.error) == (Status.ERROR, ErrorKind.SEND_ERROR)
    odd = to_result(t, "two\nlines\x00" + "x" * 2000, 4, SENT + 1, rx_kernel=True)
    assert odd.error_detail is not None
    assert odd.error_detail.startswith("two\\nlines\\x00x")
    assert len(odd.error_detail) == 1024


def test_to_result_of_what_cannot_be_physical_is_a_clock_fault() -> None:
    """A network RTT above T4-T1 (T3 before T2: residence below 0) is no RTT; a clock error
    bound over a day leaves no one-way delay nor bound (neither could be stored as such)."""
    t = _target("192.0.2.9", 862)
    long = to_result(t, _reply(rtt_net_ns=36, fault="T3 precedes T2"), 3, SENT, rx_kernel=True)
    assert (long.status, long.rtt_ns, long.error, long.error_detail) == (
        Status.ERROR, None, ErrorKind.CLOCK_FAULT, "T3 precedes T2")
    vague = to_result(t, _reply(fwd_ns=None, bwd_ns=None, clock_error_ns=86_400 * 10**9 + 1,
                                fault="clock error estimate over a day"), 3, SENT, True)
    assert (vague.status, vague.rtt_ns, vague.fwd_ns, vague.clock_error_ns, vague.error) == (
        Status.RECEIVED, 25, None, None, ErrorKind.CLOCK_FAULT)


# --- the CLI --------------------------------------------------------------------------------


def test_cli_key_file_errors(tmp_path: Path) -> None:
    """The reflector reads the probe's one key-file format (the issue's finding: the STAMP key
    file had another format than the upload keys)."""
    empty = tmp_path / "empty.key"
    empty.write_bytes(b"\n")
    with pytest.raises(IxmeterError, match="0 bytes, need at least 16"):
        read_keys(empty, None)
    with pytest.raises(IxmeterError, match="cannot read"):
        read_keys(tmp_path / "missing.key", None)
    good = tmp_path / "good.key"
    good.write_text(KEY.hex() + "\n")
    assert read_keys(good, None) == [KEY]
    mapping = tmp_path / "keys.yaml"
    mapping.write_text(f"refl-a: [{KEY.hex()}, {OTHER.hex()}]\nrefl-b: {OTHER.hex()}\n")
    assert read_keys(mapping, "refl-a") == [KEY, OTHER]
    with pytest.raises(IxmeterError, match="no key for 'refl-c'"):
        read_keys(mapping, "refl-c")


async def test_a_reflector_accepts_its_old_key_while_it_rotates() -> None:
    reflector = SessionReflector(ReflectorConfig(key=OTHER, old_keys=(KEY,)))
    sender = SessionSender(key=KEY, size=112)
    sent = sender.next_packet(10**18, 0, ErrorEstimate.from_ns(1000, True))
    reply = reflector.handle(sent.data, ("198.18.1.10", 40000), 10**18 + 5, 64,
                             10**18 + 9, 1)
    assert reply is not None
    assert isinstance(sender.receive(reply, 10**18 + 20, 10**18 + 20, 20), Reply)


async def test_cli_authenticated_reflector(tmp_path: Path) -> None:
    key_file = tmp_path / "stamp.key"
    key_file.write_text(KEY.hex() + "\n")
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "ixmeter.cli", "reflector", "--bind", "::1", "--port", "0",
         "--auth-key-file", str(key_file), "--duration", "3"], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        out = b""
        with trio.fail_after(20):
            while b"\n" not in out:
                out += await proc.stdout.receive_some()
            port = int(out.decode().splitlines()[0].split("]:")[1].split()[0])
            good = await run_session(_target("::1", port, key=KEY, size=112), 2, 0.001)
            bad = await run_session(_target("::1", port, key=OTHER, size=112,
                                            tmax_ns=200_000_000), 1, 0.001)
            while chunk := await proc.stdout.receive_some():
                out += chunk
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert [r.status for r in good] == [Status.RECEIVED] * 2
    assert [r.status for r in bad] == [Status.LOST]
    assert "reflected=2, malformed=0, bad_hmac=1" in out.decode()



async def test_cli_reflector_serves_and_prints_counters() -> None:
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "ixmeter.cli", "reflector", "--bind", "127.0.0.1", "--port", "0",
         "--stateless", "--duration", "3"], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        out = b""
        with trio.fail_after(20):
            while b"\n" not in out:
                out += await proc.stdout.receive_some()
            line = out.decode().splitlines()[0]
            assert "listening on [127.0.0.1]:" in line
            port = int(line.split("]:")[1].split()[0])
            results = await run_session(_target("127.0.0.1", port), 3, 0.001)
            assert all(r.status is Status.RECEIVED for r in results)
            while chunk := await proc.stdout.receive_some():
                out += chunk
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "received=3, reflected=3" in out.decode()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_reflector_answers_with_the_dscp_of_the_test_and_times_its_t3(host: str) -> None:
    """The issue's findings: the reflector answered DSCP-46 tests with DSCP 0, and its T3 is a
    user-space time; now the reply leaves with DSCP 46 and each reply's kernel TX stamp minus
    its T3 is measured (``SO_TIMESTAMPING`` on the reflector)."""
    from ixmeter.core import timestamping as ts
    from probes.stamp.net import T3Lag

    refl, _info = open_udp(host, 0)
    sender, _sinfo = open_udp(host, 0, dscp=46)
    ts.enable_rx_tos(sender)
    sender.connect(refl.getsockname()[:2])
    lag = T3Lag()
    session = SessionSender(size=44)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: serve_reflector(
                refl, SessionReflector(), lag=lag, task_status=task_status))
            tos = []
            for _ in range(3):
                sender.send(session.next_packet(time.time_ns(), time.monotonic_ns(),
                                                ErrorEstimate.from_ns(1000, True)).data)
                with trio.fail_after(5):
                    await trio.lowlevel.wait_readable(sender)
                _data, anc, _flags, _addr = sender.recvmsg(2048, ts.ANCBUFSIZE)
                tos.append(ts.tos_from_ancdata(anc))
            nursery.cancel_scope.cancel()
    finally:
        refl.close()
        sender.close()
    assert [t >> 2 for t in tos if t is not None] == [46, 46, 46]
    assert lag.count >= 2
    assert 0 <= lag.mean_ns < 50_000_000
