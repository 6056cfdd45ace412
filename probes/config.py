"""The probe agent's configuration file (YAML or JSON) and the jobs it implies.

A config names the probe, its key file, the collector, the spool and either an inventory (the
probe's own entry, specs and destinations are taken from it, :meth:`Topology.spec_paths`) or
an explicit ``site``/``carrier``/``specs``/``targets`` list. Errors name the file, the field and
what to do.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inventory.schema import Endpoint, Inventory, MeasurementSpec, MethodName
from inventory.topology import Topology
from ixmeter.errors import IxmeterError
from ixmeter.record import Method, TypeP
from probes.scheduler import Job
from probes.stamp.codec import AUTH_SIZE as STAMP_AUTH_SIZE
from probes.stamp.net import read_key_file

DEFAULT_STAMP_PORT = 862


class ConfigError(IxmeterError):
    """A probe config file that cannot be used."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetEntry(_Model):
    """An explicit destination of one spec (when no inventory is given)."""

    spec: str
    dst_addr: str
    dst_site: str
    dst_carrier: str
    port: int = Field(default=DEFAULT_STAMP_PORT, ge=1, le=65535)


class ProbeConfig(_Model):
    probe_id: str = Field(min_length=1)
    key_file: Path
    collector_url: str = Field(pattern=r"^https?://")
    spool: Path
    inventory: Path | None = None
    site: str | None = None
    carrier: str | None = None
    addresses: list[str] = []
    specs: list[MeasurementSpec] = []
    targets: list[TargetEntry] = []
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_bind: str = "127.0.0.1"
    icmp_mode: Literal["auto", "raw", "dgram"] = "auto"
    traceroute_mode: Literal["icmp", "udp", "tcp"] = "udp"
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    heartbeat_s: float = Field(default=60.0, gt=0)
    max_in_flight: int = Field(default=20_000, ge=1)
    # the spool's limits while the collector cannot be reached (the oldest results go first)
    spool_max_bytes: int = Field(default=1 << 30, ge=1 << 20)
    spool_max_age_s: float = Field(default=7 * 86_400.0, gt=0)
    # STAMP authenticated mode (RFC 8762 §4.2.2, §4.4): the HMAC key shared with the reflectors,
    # a file whose content (trailing whitespace stripped) is the key, as `ixmeter reflector
    # --auth-key-file` reads it. Unset: unauthenticated mode.
    stamp_auth_key_file: Path | None = None


def load_config(path: str | Path) -> ProbeConfig:
    """Read and validate a config; relative paths are taken from the file's directory."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {str(p)!r}: {exc.strerror}",
                          hint="generate one with 'ixmeter probe config --inventory FILE "
                               "--probe ID'") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML/JSON ({exc})") from None
    try:
        cfg = ProbeConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(file)"
        raise ConfigError(f"{p}: {where}: {first['msg']}"
                          + (f" ({len(exc.errors()) - 1} more problems)"
                             if len(exc.errors()) > 1 else "")) from None
    return _resolve(cfg, p.parent)


def _resolve(cfg: ProbeConfig, base: Path) -> ProbeConfig:
    fields: dict[str, Any] = {}
    for name in ("key_file", "spool", "inventory", "stamp_auth_key_file"):
        value = getattr(cfg, name)
        if value is not None and not value.is_absolute():
            fields[name] = base / value
    if cfg.inventory is None and (cfg.site is None or cfg.carrier is None or not cfg.targets):
        raise ConfigError("config: give 'inventory', or 'site', 'carrier', 'specs' and "
                          "'targets'")
    return cfg.model_copy(update=fields)


def read_key(path: Path, probe_id: str | None = None) -> bytes:
    """The probe's HMAC key: a file holding it in hex, or a keys file (YAML mapping probe id ->
    hex key or list of keys, newest first, as ``ixmeter keys new --out`` writes)."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read key file {str(path)!r}: {exc.strerror}",
                          hint="write the hex key from 'ixmeter keys new --probe ID' there, "
                               "mode 0600") from None
    text = _from_keys_file(text, path, probe_id)
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"key file {str(path)!r} does not hold a hex key") from None
    if len(key) < 16:
        raise ConfigError(f"key file {str(path)!r}: key of {len(key)} bytes, need >= 16")
    return key


def _from_keys_file(text: str, path: Path, probe_id: str | None) -> str:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if not isinstance(data, dict):
        return text
    value = data.get(probe_id) if probe_id else None
    if isinstance(value, list) and value:
        value = value[0]
    if value is None:
        raise ConfigError(f"keys file {str(path)!r} has no key for probe {probe_id!r}")
    return str(value)


def route_source(dst: str) -> str:
    """The address the kernel would send from to ``dst`` (a connected UDP socket sends
    nothing): the source of a target given without the probe's ``addresses``."""
    family = socket.AF_INET6 if _version(dst) == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((dst, 9))
            return str(s.getsockname()[0])
    except OSError as exc:
        raise ConfigError(f"config: no route to {dst} ({exc.strerror})",
                          hint="list the probe's own 'addresses' in the config") from None


def _version(addr: str) -> int:
    return ipaddress.ip_address(addr).version


def _type_p(spec: MeasurementSpec, version: int, mode: str, port: int,
            stamp_auth: bool = False) -> TypeP:
    """Type-P per method (RFC 2330 §13): ICMP message size; STAMP UDP to the reflector port,
    at least the 112-octet authenticated base packet in authenticated mode (RFC 8762 §4.2.2)."""
    if spec.method is MethodName.ICMP:
        return TypeP("icmp", version, spec.size, spec.dscp)
    if spec.method is MethodName.STAMP:
        size = max(spec.size, STAMP_AUTH_SIZE) if stamp_auth else spec.size
        return TypeP("udp", version, size, spec.dscp, port)
    dport = {"udp": 33434, "tcp": 80}.get(mode)
    return TypeP(mode, version, spec.size, spec.dscp, dport)


def jobs_from_inventory(inv: Inventory, cfg: ProbeConfig, session: str) -> list[Job]:
    """Every (spec, destination, IP version) this probe measures, per the inventory."""
    topo = Topology(inv)
    probe = topo.endpoints.get(cfg.probe_id)
    if probe is None or probe not in inv.probes:
        raise ConfigError(f"probe {cfg.probe_id!r} is not in inventory {inv.name!r}")
    jobs = []
    for spec in inv.specs:
        for src, dst in topo.spec_paths(spec):
            if src.id == cfg.probe_id:
                jobs += _jobs_for(spec, src, dst, cfg, session)
    return jobs


def _jobs_for(spec: MeasurementSpec, src: Endpoint, dst: Endpoint, cfg: ProbeConfig,
              session: str) -> list[Job]:
    port = dst.reflector.port if dst.reflector else DEFAULT_STAMP_PORT
    if spec.method is MethodName.STAMP and dst.reflector is None:
        return []
    out = []
    for version in spec.ip_versions:
        s = next((a for a in src.addresses if _version(a) == version), None)
        d = next((a for a in dst.addresses if _version(a) == version), None)
        if s and d:
            out.append(_job(spec, cfg, src.site, src.carrier, s, dst.site, dst.carrier, d,
                            port, session))
    return out


def _job(spec: MeasurementSpec, cfg: ProbeConfig, src_site: str, src_carrier: str,
         src_addr: str, dst_site: str, dst_carrier: str, dst_addr: str, port: int,
         session: str) -> Job:
    version = _version(dst_addr)
    options: dict[str, Any] = {"mode": cfg.traceroute_mode}
    keyed = spec.method is MethodName.STAMP and cfg.stamp_auth_key_file is not None
    if keyed:
        assert cfg.stamp_auth_key_file is not None
        options["stamp_key"] = read_key_file(
            cfg.stamp_auth_key_file, "stamp_auth_key_file",
            "use the key file given to the reflectors' --auth-key-file")
    return Job(spec.id, Method(spec.method.value), cfg.probe_id, src_site, src_carrier,
               dst_site, dst_carrier, src_addr, dst_addr,
               _type_p(spec, version, cfg.traceroute_mode, port, keyed), spec.rate_pps,
               round(spec.tmax_s * 1e9), spec.schedule, session, options)


def jobs_from_targets(cfg: ProbeConfig, session: str) -> list[Job]:
    """Jobs from an explicit ``specs``/``targets`` list."""
    specs = {s.id: s for s in cfg.specs}
    jobs = []
    for i, t in enumerate(cfg.targets):
        spec = specs.get(t.spec)
        if spec is None:
            raise ConfigError(f"config: targets[{i}].spec: no spec {t.spec!r} in 'specs'")
        version = _version(t.dst_addr)
        src = next((a for a in cfg.addresses if _version(a) == version), None) \
            or route_source(t.dst_addr)
        jobs.append(_job(spec, cfg, cfg.site or "", cfg.carrier or "", src, t.dst_site,
                         t.dst_carrier, t.dst_addr, t.port, session))
    return jobs


def probe_config_for(inv_path: Path, probe_id: str, *, collector_url: str, key_file: str,
                     spool: str, metrics_port: int) -> dict[str, Any]:
    """A starting config for ``probe_id`` that reads its targets from the inventory."""
    return {"probe_id": probe_id, "key_file": key_file, "collector_url": collector_url,
            "spool": spool, "inventory": str(inv_path.resolve()), "metrics_port": metrics_port}
