"""STAMP across a routed hop between network namespaces this test makes (needs root).

sender ns --veth-- router ns --veth-- reflector ns, IPv4 198.18.250.0/24 and IPv6 2001:2:fa::/48:
the reply arrives with TTL/Hop Limit 63, the forward TTL seen by the reflector is 63, and one
routed hop still gives kernel-stamped RTT_net, forward and backward delays.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import require_tool

pytestmark = pytest.mark.root

SENDER_SCRIPT = r"""
import json, sys, trio
from probes.stamp.net import SenderEndpoint, open_udp
from probes.stamp.session import Reply, SessionSender
from probes.clock import ClockStatus

async def main(host, port):
    sock, info = open_udp("::" if ":" in host else "0.0.0.0", 0, tx_stamps=True)
    sock.connect((host, port))
    ep = SenderEndpoint(sock, info, SessionSender(ssid=2, tmax_ns=2_000_000_000),
                        status=lambda: ClockStatus(True, 1000, 1000, "t"))
    out = []
    async with trio.open_nursery() as n:
        await n.start(ep.run)
        for _ in range(5):
            r = await ep.probe()
            if not isinstance(r, Reply):
                out.append({"other": repr(r)})
            else:
                out.append({"rtt": r.rtt_net_ns, "fwd": r.fwd_ns, "bwd": r.bwd_ns,
                            "ttl_fwd": r.sender_ttl, "ttl_back": r.reply_ttl,
                            "kernel": r.t1_kernel})
        n.cancel_scope.cancel()
    print(json.dumps(out))

trio.run(main, sys.argv[1], int(sys.argv[2]))
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _ns(ns: str, *args: str) -> None:
    _ip("netns", "exec", ns, *args)


@pytest.fixture
def three_namespaces() -> Iterator[tuple[str, str, str]]:
    require_tool("ip")
    tag = f"st{os.getpid() % 100000}"
    s, r, f = f"{tag}s", f"{tag}r", f"{tag}f"
    try:
        for ns in (s, r, f):
            _ip("netns", "add", ns)
            _ns(ns, "ip", "link", "set", "lo", "up")
            _ns(ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
        _ip("link", "add", f"{tag}a", "netns", s, "type", "veth", "peer", f"{tag}b", "netns", r)
        _ip("link", "add", f"{tag}c", "netns", r, "type", "veth", "peer", f"{tag}d", "netns", f)
        plan = [(s, f"{tag}a", "198.18.250.1/30", "2001:2:fa:1::1/64"),
                (r, f"{tag}b", "198.18.250.2/30", "2001:2:fa:1::2/64"),
                (r, f"{tag}c", "198.18.250.5/30", "2001:2:fa:2::1/64"),
                (f, f"{tag}d", "198.18.250.6/30", "2001:2:fa:2::2/64")]
        for ns, dev, v4, v6 in plan:
            _ns(ns, "ip", "addr", "add", v4, "dev", dev)
            _ns(ns, "ip", "-6", "addr", "add", v6, "dev", dev, "nodad")
            _ns(ns, "ip", "link", "set", dev, "up")
        _ns(r, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        _ns(s, "ip", "route", "add", "default", "via", "198.18.250.2")
        _ns(s, "ip", "-6", "route", "add", "default", "via", "2001:2:fa:1::2")
        _ns(f, "ip", "route", "add", "default", "via", "198.18.250.5")
        _ns(f, "ip", "-6", "route", "add", "default", "via", "2001:2:fa:2::1")
        yield s, r, f
    finally:
        for ns in (s, r, f):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _warm_up(ns: str, dst: str) -> None:
    """Resolve neighbours first: a STAMP packet queued behind ARP/ND is not what we test."""
    require_tool("ping")
    for _ in range(5):
        if subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", dst],
                          capture_output=True).returncode == 0:
            return
    pytest.fail(f"{dst} unreachable from {ns}")


@pytest.mark.parametrize("dst", ["198.18.250.6", "2001:2:fa:2::2"])
def test_stamp_across_a_routed_hop(three_namespaces: tuple[str, str, str], dst: str) -> None:
    s, _r, f = three_namespaces
    reflector = subprocess.Popen(
        ["ip", "netns", "exec", f, sys.executable, "-m", "ixmeter.cli", "reflector",
         "--bind", dst, "--port", "8620", "--duration", "15"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert reflector.stdout is not None
        assert "listening" in reflector.stdout.readline()
        _warm_up(s, dst)
        done = subprocess.run(["ip", "netns", "exec", s, sys.executable, "-c", SENDER_SCRIPT,
                               dst, "8620"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        replies = json.loads(done.stdout)
    finally:
        reflector.terminate()
        reflector.wait(timeout=10)
        if reflector.stdout is not None:
            reflector.stdout.close()
    assert len(replies) == 5
    assert all("other" not in r for r in replies), replies
    for r in replies:
        assert (r["ttl_fwd"], r["ttl_back"]) == (63, 63)
        assert r["rtt"] > 0
        assert r["fwd"] > 0
        assert r["bwd"] > 0
        assert r["kernel"]
