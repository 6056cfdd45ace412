"""The probe agent's configuration file (YAML or JSON) and the jobs it implies.

A config names the probe, its key file, the collector and the spool, and where the probe's
measurement plan comes from (:attr:`ProbeConfig.source`):

- ``collector`` (neither ``inventory`` nor ``targets`` given): the collector's signed plan,
  ``GET /v1/probes/{id}/inventory`` (:mod:`probes.plan`), cached on disk;
- ``inventory``: the probe's own entry, specs and destinations of a local inventory file
  (:meth:`Topology.spec_paths`);
- ``targets``: an explicit ``site``/``carrier``/``specs``/``targets`` list.

Keys use one format (:mod:`probes.keys`): ``key_file`` under the probe id, ``stamp_keys_file``
under each authenticated reflector's endpoint id (or address). Errors name the file, the field
and what to do.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inventory.schema import Endpoint, Inventory, MeasurementSpec
from inventory.topology import Topology
from ixmeter.core.errors import IxmeterError
from ixmeter.core.record import Method, TypeP
from probes.keys import KeyFileError, read_key
from probes.scheduler import Job
from probes.stamp.codec import AUTH_SIZE as STAMP_AUTH_SIZE

DEFAULT_STAMP_PORT = 862


class ConfigError(IxmeterError):
    """A probe config file that cannot be used."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetEntry(_Model):
    """An explicit destination of one spec (when no inventory is given); ``id`` names its
    STAMP key in ``stamp_keys_file`` when ``authenticated``."""

    spec: str
    dst_addr: str
    dst_site: str
    dst_carrier: str
    port: int = Field(default=DEFAULT_STAMP_PORT, ge=1, le=65535)
    id: str | None = None
    authenticated: bool = False


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
    # flow: traces on the ICMP identifier of the path's measurements; icmp: their own
    traceroute_mode: Literal["flow", "icmp"] = "flow"
    max_traces: int = Field(default=16, ge=1, le=256)
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    heartbeat_s: float = Field(default=60.0, gt=0)
    max_in_flight: int = Field(default=20_000, ge=1)
    # the spool's limits while the collector cannot be reached (the oldest results go first)
    spool_max_bytes: int = Field(default=1 << 30, ge=1 << 20)
    spool_max_age_s: float = Field(default=7 * 86_400.0, gt=0)
    # STAMP authenticated mode (RFC 8762 §4.2.2, §4.4): the keys of the reflectors marked
    # authenticated, one per reflector, in the key-file format of probes.keys
    stamp_keys_file: Path | None = None
    # the plan from the collector: how often it is fetched again, where it is cached
    plan_refresh_s: float = Field(default=300.0, ge=1)
    plan_cache: Path | None = None
    # clock evidence: auto (chrony, else PTP, else the kernel), or one of them only
    clock_source: Literal["auto", "chrony", "ptp", "kernel"] = "auto"
    ptp_device: str = "/dev/ptp0"

    @property
    def source(self) -> Literal["collector", "inventory", "targets"]:
        """Where the measurement plan comes from (module docstring)."""
        if self.inventory is not None:
            return "inventory"
        return "targets" if self.targets else "collector"

    @property
    def plan_cache_path(self) -> Path:
        return self.plan_cache or self.spool.with_name(self.spool.name + ".plan.json")


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
    for name in ("key_file", "spool", "inventory", "stamp_keys_file", "plan_cache"):
        value = getattr(cfg, name)
        if value is not None and not value.is_absolute():
            fields[name] = base / value
    if cfg.targets and (cfg.site is None or cfg.carrier is None):
        raise ConfigError("config: explicit 'targets' need 'site', 'carrier' and 'specs' "
                          "(or give 'inventory', or neither to take the collector's plan)")
    return cfg.model_copy(update=fields)


def upload_key(cfg: ProbeConfig) -> bytes:
    """The probe's newest upload key (``key_file`` under the probe id)."""
    try:
        return read_key(cfg.key_file, cfg.probe_id)
    except KeyFileError as exc:
        raise ConfigError(str(exc), hint=exc.hint) from None


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


def _type_p(spec: MeasurementSpec, version: int, port: int, stamp_auth: bool = False) -> TypeP:
    """Type-P per method (RFC 2330 §13): ICMP message size; STAMP UDP to the reflector port,
    at least the 112-octet authenticated base packet in authenticated mode (RFC 8762 §4.2.2)."""
    if spec.method is Method.ICMP:
        return TypeP("icmp", version, spec.size, spec.dscp)
    if spec.method is Method.STAMP:
        size = max(spec.size, STAMP_AUTH_SIZE) if stamp_auth else spec.size
        return TypeP("udp", version, size, spec.dscp, port)
    return TypeP("icmp", version, spec.size, spec.dscp)  # Paris traceroute with ICMP echoes


@dataclass(frozen=True, slots=True)
class Dest:
    """A destination endpoint as the jobs need it: id (for its STAMP key), site, carrier,
    addresses and reflector (port, authenticated; None: answers no STAMP)."""

    id: str
    site: str
    carrier: str
    addresses: Sequence[str]
    reflector: tuple[int, bool] | None


def _dest(ep: Endpoint) -> Dest:
    refl = (ep.reflector.port, ep.reflector.authenticated) if ep.reflector else None
    return Dest(ep.id, ep.site, ep.carrier, ep.addresses, refl)


def jobs_from_inventory(inv: Inventory, cfg: ProbeConfig, session: str) -> list[Job]:
    """Every (spec, destination, IP version) this probe measures, per the inventory."""
    topo = Topology(inv)
    probe = topo.endpoints.get(cfg.probe_id)
    if probe is None or probe not in inv.probes:
        raise ConfigError(f"probe {cfg.probe_id!r} is not in inventory {inv.name!r}")
    pairs = [(spec, _dest(dst)) for spec in inv.specs for src, dst in topo.spec_paths(spec)
             if src.id == cfg.probe_id]
    return _jobs(pairs, probe, cfg, session)


def jobs_from_plan(plan: dict[str, Any], cfg: ProbeConfig, session: str) -> list[Job]:
    """Jobs from the collector's plan (``analyzer.collector.inventory.probe_plan``): the
    probe's entry, its specs and each spec's destinations, validated as the inventory is."""
    try:
        probe = Endpoint.model_validate(plan["probe"])
        specs = {s["id"]: MeasurementSpec.model_validate(s) for s in plan["specs"]}
        pairs = [(specs[t["spec"]], _dest(Endpoint.model_validate(t["target"])))
                 for t in plan["targets"]]
    except (KeyError, TypeError, ValidationError) as exc:
        raise ConfigError(f"the collector's plan for {cfg.probe_id!r} is not usable: {exc}",
                          hint="the collector and the probe must run the same release"
                          ) from None
    if probe.id != cfg.probe_id:
        raise ConfigError(f"the collector's plan is for {probe.id!r}, not {cfg.probe_id!r}")
    return _jobs(pairs, probe, cfg, session)


def _jobs(pairs: Iterable[tuple[MeasurementSpec, Dest]], probe: Endpoint, cfg: ProbeConfig,
          session: str) -> list[Job]:
    keys = StampKeys(cfg)
    jobs = []
    for spec, dst in pairs:
        if spec.method is Method.STAMP and dst.reflector is None:
            continue
        for version in spec.ip_versions:
            s = next((a for a in probe.addresses if _version(a) == version), None)
            d = next((a for a in dst.addresses if _version(a) == version), None)
            if s and d:
                jobs.append(_job(spec, cfg, (probe.site, probe.carrier, s), dst, d, keys,
                                 session))
    return jobs


class StampKeys:
    """The STAMP key of each authenticated reflector, read once per job list."""

    def __init__(self, cfg: ProbeConfig) -> None:
        self.path = cfg.stamp_keys_file

    def key_for(self, dst: Dest, addr: str) -> bytes:
        if self.path is None:
            raise ConfigError(f"reflector {dst.id!r} ({addr}) is authenticated: give "
                              "'stamp_keys_file' with its key",
                              hint=f"a key file with '{dst.id}: HEXKEY' (probes.keys format)")
        for key_id in (dst.id, addr):
            try:
                return read_key(self.path, key_id, what="stamp_keys_file")
            except KeyFileError as exc:
                last = exc
        raise ConfigError(str(last), hint=last.hint)


def _job(spec: MeasurementSpec, cfg: ProbeConfig, src: tuple[str, str, str], dst: Dest,
         dst_addr: str, keys: StampKeys, session: str) -> Job:
    version = _version(dst_addr)
    port, authenticated = dst.reflector or (DEFAULT_STAMP_PORT, False)
    options: dict[str, Any] = {"mode": cfg.traceroute_mode, "dst_id": dst.id}
    keyed = spec.method is Method.STAMP and authenticated
    if keyed:
        options["stamp_key"] = keys.key_for(dst, dst_addr)
    return Job(spec.id, Method(spec.method.value), cfg.probe_id, src[0], src[1],
               dst.site, dst.carrier, src[2], dst_addr,
               _type_p(spec, version, port, keyed), spec.rate_pps,
               round(spec.tmax_s * 1e9), spec.schedule, session, options)


def jobs_from_targets(cfg: ProbeConfig, session: str) -> list[Job]:
    """Jobs from an explicit ``specs``/``targets`` list."""
    specs = {s.id: s for s in cfg.specs}
    keys = StampKeys(cfg)
    jobs = []
    for i, t in enumerate(cfg.targets):
        spec = specs.get(t.spec)
        if spec is None:
            raise ConfigError(f"config: targets[{i}].spec: no spec {t.spec!r} in 'specs'")
        version = _version(t.dst_addr)
        src = next((a for a in cfg.addresses if _version(a) == version), None) \
            or route_source(t.dst_addr)
        dst = Dest(t.id or t.dst_addr, t.dst_site, t.dst_carrier, [t.dst_addr],
                   (t.port, t.authenticated))
        jobs.append(_job(spec, cfg, (cfg.site or "", cfg.carrier or "", src), dst,
                         t.dst_addr, keys, session))
    return jobs


def probe_config_for(inv_path: Path, probe_id: str, *, collector_url: str, key_file: str,
                     spool: str, metrics_port: int) -> dict[str, Any]:
    """A starting config for ``probe_id`` that reads its targets from the inventory."""
    return {"probe_id": probe_id, "key_file": key_file, "collector_url": collector_url,
            "spool": spool, "inventory": str(inv_path.resolve()), "metrics_port": metrics_port}
