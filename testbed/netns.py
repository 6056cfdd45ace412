"""Kernel plumbing: network namespaces (``ip netns``), TUN devices and privilege checks.

Every namespace the testbed makes is named ``ixm-<instance>-<host>`` so that cleanup can find
the leftovers of a crashed run. TUN devices are not persistent: they vanish with the emulator
process that holds them, wherever they were moved.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ixmeter.core.errors import IxmeterError, PermissionProblem
from ixmeter.core.timestamping import enable_rx_timestamps
from testbed.plan import Host

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
HOST_IFNAME = "ixm0"  # the TUN device's name inside every host namespace
CAP_NET_ADMIN = 12
CLONE_NEWNET = 0x40000000  # linux/sched.h
NETNS_DIR = Path("/run/netns")  # where ``ip netns`` keeps its namespaces
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4  # linux/if_packet.h: sent by this host
# Classic BPF (Documentation/networking/filter.rst): accept only what the host sends into its
# TUN device (pkttype OUTGOING), not what the emulator writes back into it.
#   ld [SKF_AD_OFF + SKF_AD_PKTTYPE]; jeq #PACKET_OUTGOING, 0, 1; ret #0x40000; ret #0
_OUTGOING_ONLY = ((0x20, 0, 0, 0xFFFFF004), (0x15, 0, 1, PACKET_OUTGOING),
                  (0x06, 0, 0, 0x40000), (0x06, 0, 0, 0))


class NetnsError(IxmeterError):
    """An ``ip`` command that failed while building or removing the testbed."""


def ip(args: Sequence[str], *, ns: str | None = None, stdin: str | None = None) -> str:
    """Run ``ip [-n NS] ARGS``; raise :class:`NetnsError` with its stderr on failure."""
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def namespaces(prefix: str = "ixm-") -> list[str]:
    """Network namespaces whose name starts with ``prefix``."""
    if shutil.which("ip") is None:
        return []
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    names = (line.split()[0] for line in out.stdout.splitlines() if line.strip())
    return sorted(n for n in names if n.startswith(prefix))


def delete_namespaces(prefix: str) -> list[str]:
    """Delete every namespace starting with ``prefix``; returns the names deleted."""
    gone = []
    for name in namespaces(prefix):
        proc = subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
        if proc.returncode == 0:
            gone.append(name)
    return gone


def open_tun(template: str = "ixm%d") -> tuple[int, str]:
    """Create a non-persistent TUN device (IFF_TUN | IFF_NO_PI, raw IP packets) and return
    (non-blocking fd, kernel-chosen name). See Documentation/networking/tuntap.rst."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        ifr = struct.pack("16sH22x", template.encode(), IFF_TUN | IFF_NO_PI)
        res = fcntl.ioctl(fd, TUNSETIFF, ifr)
    except OSError:
        os.close(fd)
        raise
    return fd, res[:16].rstrip(b"\0").decode()


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(namespace: str) -> Iterator[None]:
    """Run the body with the calling thread in network namespace ``namespace`` (setns(2), needs
    CAP_SYS_ADMIN); sockets created there stay in it. The thread is back home afterwards."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(NETNS_DIR / namespace, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(target)
    finally:
        os.close(home)


def open_tap(namespace: str, ifname: str = HOST_IFNAME,
             rcvbuf: int = 8 << 20) -> socket.socket:
    """A packet socket on the host's TUN device that receives, with the kernel's receive
    timestamp (SO_TIMESTAMPNS, CLOCK_REALTIME), every IP packet the host sends into it.

    The kernel hands packets to packet sockets (dev_queue_xmit_nit) before the TUN driver
    queues them, so the stamp is when the packet entered the emulated link, however late the
    emulator wakes up to read it; the TUN device's own queue is then left unread (its
    ``txqueuelen`` is set to 0, it drops at once) and serves only to inject packets."""
    with in_netns(namespace):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)  # no packets until bound
        try:
            code = b"".join(struct.pack("HBBI", *ins) for ins in _OUTGOING_ONLY)
            buf = ctypes.create_string_buffer(code)
            prog = struct.pack("HxxxxxxQ", len(_OUTGOING_ONLY), ctypes.addressof(buf))
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)
            if not enable_rx_timestamps(sock):
                raise OSError("the kernel refused SO_TIMESTAMPNS on a packet socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE (root)
            sock.bind((ifname, ETH_P_ALL))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
    subprocess.run(["ip", "netns", "exec", namespace, "ip", "link", "set", ifname,
                    "txqueuelen", "0"], capture_output=True, check=True)
    return sock


def host_commands(host: Host, tun: str) -> str:
    """The ``ip -batch`` lines that configure ``host`` inside its namespace."""
    lines = ["link set lo up", f"link set {tun} name {HOST_IFNAME}",
             f"link set {HOST_IFNAME} up"]
    for addr in host.addresses:
        plen, flags = (128, " nodad") if ":" in addr else (32, "")
        lines.append(f"addr add {addr}/{plen} dev {HOST_IFNAME}{flags}")
    lines += [f"route add 0.0.0.0/0 dev {HOST_IFNAME}", f"route add ::/0 dev {HOST_IFNAME}"]
    return "\n".join(lines) + "\n"


SYSCTLS = (
    "net.ipv4.ping_group_range=0 2147483647",  # unprivileged ICMP echo sockets for probes
    "net.ipv4.icmp_ratelimit=0",  # answer every traceroute probe (as routers here do)
    "net.ipv6.icmp.ratelimit=0",
    "net.ipv6.conf.all.accept_ra=0",
    "net.ipv6.conf.default.router_solicitations=0",
)


def sysctl_script() -> str:
    """Shell lines writing :data:`SYSCTLS` under /proc/sys (no dependency on procps)."""
    lines = []
    for item in SYSCTLS:
        key, value = item.split("=", 1)
        lines.append(f"echo '{value}' > /proc/sys/{key.replace('.', '/')}")
    return "; ".join(lines)


def build_host(host: Host, tun: str) -> None:
    """Create ``host``'s namespace, move TUN device ``tun`` into it and configure it."""
    ip(["netns", "add", host.namespace])
    ip(["link", "set", "dev", tun, "netns", host.namespace])
    subprocess.run(["ip", "netns", "exec", host.namespace, "sh", "-c", sysctl_script()],
                   capture_output=True, check=False)
    ip(["-batch", "-"], ns=host.namespace, stdin=host_commands(host, tun))


@dataclass(frozen=True, slots=True)
class Privileges:
    """What this process may do; ``missing`` names each missing piece."""

    missing: tuple[str, ...]

    @property
    def full(self) -> bool:
        return not self.missing


def check_privileges() -> Privileges:
    """Can this process build the namespace testbed? (root or CAP_NET_ADMIN + CAP_SYS_ADMIN,
    /dev/net/tun, iproute2)."""
    missing = []
    if os.geteuid() != 0 and not _has_cap(CAP_NET_ADMIN):
        missing.append("root (CAP_NET_ADMIN and CAP_SYS_ADMIN to create network namespaces)")
    if not os.path.exists("/dev/net/tun"):
        missing.append("/dev/net/tun (load the tun module: modprobe tun)")
    if shutil.which("ip") is None:
        missing.append("the ip command (Debian package iproute2)")
    return Privileges(tuple(missing))


def _has_cap(bit: int) -> bool:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except OSError:
        pass
    return False


def require_privileges() -> None:
    """Raise :class:`PermissionProblem` naming what is missing for namespace mode."""
    priv = check_privileges()
    if not priv.full:
        raise PermissionProblem(
            "the namespace testbed needs: " + "; ".join(priv.missing),
            hint="run as root (sudo), or use 'ixmeter testbed up --mode loopback' for the "
                 "unprivileged UDP delay line")


def private_netns_dir() -> None:
    """userns mode: give this (unshared) mount namespace its own tmpfs on /run/netns so that
    ``ip netns add`` works without privileges outside it."""
    os.makedirs("/run/netns", exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "ixm-netns", "/run/netns"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise NetnsError(f"cannot mount a private /run/netns: {proc.stderr.strip()}",
                         hint="use --mode loopback")


def userns_available() -> bool:
    """Can this user create a user + mount + network namespace (``unshare -Urnm``), mount its
    own /run/netns there, and open /dev/net/tun? (What userns mode needs.)"""
    if shutil.which("unshare") is None or not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return False
    probe = "mkdir -p /run/netns && mount -t tmpfs ixm-probe /run/netns"
    proc = subprocess.run(["unshare", "-Urnm", "--propagation", "private", "sh", "-c", probe],
                          capture_output=True, check=False)
    return proc.returncode == 0
