"""The demo's probe hosts: a key per probe, a STAMP reflector and a probe agent in every host's
namespace, each agent configured from the demo inventory (``ixmeter probe config``) to upload to
the collector's unix socket."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ixmeter.demo.bridge import BRIDGE_PORT
from ixmeter.demo.plan import DemoError
from ixmeter.demo.procs import Children, wait_until

if TYPE_CHECKING:
    from ixmeter.demo.network import Network
    from testbed.api import Testbed

HEARTBEAT_S = 10.0  # the progress line shows the spools' depth from these


def make_keys(probe_ids: list[str], rundir: Path) -> Path:
    """A fresh HMAC key per probe: the collector's keys file (``ixmeter keys``' format) and one
    hex key file per probe, as the probe's ``key_file`` (both mode 0600)."""
    from analyzer.collector.keys import KeyRing, new_key, save_keys

    ring = KeyRing()
    keydir = rundir / "keys"
    keydir.mkdir(mode=0o700, exist_ok=True)
    for pid in probe_ids:
        key = new_key()
        ring.add(pid, key)
        fd = os.open(keydir / f"{pid}.key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key.hex() + "\n")
    path = rundir / "keys.yaml"
    save_keys(ring, path)
    return path


def reflector_args(tb: Testbed, host: str) -> list[str]:
    """``ixmeter reflector`` arguments for ``host``: UDP 862 in a namespace; in loopback mode
    the port the delay line forwards to."""
    if tb.mode == "loopback":
        return ["--bind", "127.0.0.1", "--port", str(tb.reflector_port(host))]
    return ["--port", "862"]


def probe_config(inventory: Path, rundir: Path, tb: Testbed, host: str,
                 collector_url: str) -> dict[str, Any]:
    """The agent's config for ``host``: its key, the collector (through the bridge), a spool in
    the run folder; targets from the demo inventory (namespaces) or explicit loopback ports."""
    pdir = rundir / "probes" / host
    cfg: dict[str, Any] = {
        "probe_id": host, "key_file": str(rundir / "keys" / f"{host}.key"),
        "collector_url": collector_url, "spool": str(pdir / "spool.db"),
        "heartbeat_s": HEARTBEAT_S,
    }
    if tb.mode != "loopback":
        return {**cfg, "inventory": str(inventory)}
    return {**cfg, **_loopback_targets(inventory, tb, host)}


def _loopback_targets(inventory: Path, tb: Testbed, host: str) -> dict[str, Any]:
    """Loopback mode: STAMP only, every destination reached through its delay-line port."""
    from inventory.loader import load

    inv = load(inventory)
    spec = next(s for s in inv.specs if s.method.value == "stamp")
    me = tb.host(host)
    targets = [{"spec": spec.id, "dst_addr": "127.0.0.1", "dst_site": h.site,
                "dst_carrier": h.carrier, "port": tb.path_port(host, name)}
               for name, h in sorted(tb.hosts.items()) if name != host]
    return {"site": me.site, "carrier": me.carrier, "addresses": ["127.0.0.1"],
            "specs": [spec.model_dump(mode="json", exclude={"sources", "destinations"})
                      | {"ip_versions": [4]}],
            "targets": targets}


def start_bridge(net: Network, tb: Testbed, children: Children) -> str:
    """Start :mod:`ixmeter.demo.bridge` for one copy of the network; returns (and keeps in
    ``net``'s run folder) the collector URL its probes use."""
    argv = [sys.executable, "-m", "ixmeter.demo.bridge", "--uds", str(net.socket)]
    url_file = net.rundir / "collector.url"
    if tb.mode == "loopback":
        port_file = net.rundir / "bridge.port"
        child = children.start(f"bridge {net.role}", f"bridge-{net.group}",
                               [*argv, "--port-file", str(port_file)],
                               net.rundir / "bridge.log")
        wait_until(lambda: port_file.exists() or not child.alive(), 30.0)
        if not child.alive() or not port_file.exists():
            raise DemoError(f"the collector bridge did not start: {child.tail()}")
        url = f"http://127.0.0.1:{port_file.read_text().strip()}"
    else:
        namespaces = [tb.host(h).namespace for h in sorted(tb.hosts)]
        child = children.start(f"bridge {net.role}", f"bridge-{net.group}",
                               [*argv, *(a for ns in namespaces for a in ("--netns", ns))],
                               net.rundir / "bridge.log")
        if not wait_until(lambda: "listener" in child.tail() or not child.alive(), 30.0) \
                or not child.alive():
            raise DemoError(f"the collector bridge did not start: "
                            f"{child.tail() or 'no output'}")
        url = f"http://127.0.0.1:{BRIDGE_PORT}"
    url_file.write_text(url)
    return url


def start_probes(inventory: Path, net: Network, tb: Testbed, children: Children) -> None:
    """Write each host's config and start ``ixmeter probe run`` in its namespace."""
    from ixmeter.demo.procs import ixmeter_argv

    url = (net.rundir / "collector.url").read_text()
    for name in sorted(tb.hosts):
        pdir = net.rundir / "probes" / name
        pdir.mkdir(parents=True, exist_ok=True)
        path = pdir / "probe.yaml"
        path.write_text(yaml.safe_dump(probe_config(inventory, net.rundir, tb, name, url),
                                       sort_keys=False))
        argv = ixmeter_argv("probe", "run", "--config", str(path))
        children.start(f"probe {net.role} {name}", f"probe-{net.group}", tb.wrap(name, argv),
                       pdir / "probe.log")


def spools_left(rundir: Path, hosts: list[str]) -> int:
    """Results still in the probes' spools (after they stopped): 0 when all were uploaded."""
    from probes.spool import Spool

    total = 0
    for host in hosts:
        path = rundir / "probes" / host / "spool.db"
        if path.exists():
            spool = Spool(path, host)
            try:
                total += spool.depth()
            finally:
                spool.close()
    return total
