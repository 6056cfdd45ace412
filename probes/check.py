"""``ixmeter probe check --config FILE``: what a probe host is missing, before it runs.

Each check is one line, ``ok``, ``warn`` or ``FAIL``, with what to do: the config and key, the
spool (writable, room for its ``spool_max_bytes``), the sockets the plan needs (ICMP, raw ICMP
for traceroute, STAMP's UDP from each source address: capabilities and addresses), the clock
(synchronised, its bound; chrony or PTP where present) and the collector (reachable, the key
accepted, the plan served). Exit status 1 if any check failed.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from ixmeter.core import plan as plan_format
from ixmeter.core.errors import IxmeterError
from ixmeter.core.record import Method
from probes.config import ProbeConfig, load_config, upload_key
from probes.scheduler import Job


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report."""

    level: str  # ok | warn | FAIL
    what: str
    detail: str

    def line(self) -> str:
        return f"{self.level:<4} {self.what}: {self.detail}"


def run_checks(config: Path) -> list[Check]:
    """Every check, in order; a config that does not load is the only one."""
    try:
        cfg = load_config(config)
    except IxmeterError as exc:
        return [Check("FAIL", "config", f"{exc}{f' ({exc.hint})' if exc.hint else ''}")]
    out = [Check("ok", "config", f"{config}: probe {cfg.probe_id}, plan from {cfg.source}")]
    out += _key(cfg)
    out += _spool(cfg)
    served: list[dict[str, object]] = []
    out += _collector(cfg, served)
    jobs = _jobs(cfg, out, served)
    out += _sockets(cfg, jobs)
    out += _clock(cfg)
    return out


def _key(cfg: ProbeConfig) -> Iterator[Check]:
    try:
        upload_key(cfg)
    except IxmeterError as exc:
        yield Check("FAIL", "key", f"{exc} ({exc.hint})")
        return
    mode = cfg.key_file.stat().st_mode & 0o077
    yield Check("warn" if mode else "ok", "key",
                f"{cfg.key_file}{' is readable by others: chmod 0600' if mode else ''}")


def _spool(cfg: ProbeConfig) -> Iterator[Check]:
    folder = cfg.spool.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".ixmeter-check-{time.monotonic_ns()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        yield Check("FAIL", "spool", f"{folder} is not writable ({exc.strerror}): give the "
                    "agent's user a folder of its own (systemd StateDirectory=)")
        return
    free = shutil.disk_usage(folder).free
    level = "ok" if free >= cfg.spool_max_bytes else "warn"
    yield Check(level, "spool", f"{cfg.spool}: {free / 2**20:.0f} MiB free for a spool of at "
                f"most {cfg.spool_max_bytes / 2**20:.0f} MiB (spool_max_bytes)")


def _jobs(cfg: ProbeConfig, out: list[Check], served: list[dict[str, object]]) -> list[Job]:
    """The plan's jobs: the collector's as just served, else the cached or local one."""
    from probes.config import jobs_from_plan
    from probes.jobsource import JobSource

    try:
        if served and cfg.source == "collector":
            jobs = jobs_from_plan(served[0]["plan"], cfg, "check")  # type: ignore[arg-type]
        else:
            jobs = JobSource(cfg, "check").initial()
    except IxmeterError as exc:
        out.append(Check("FAIL", "plan", f"{exc}"))
        return []
    methods = ", ".join(f"{sum(j.method is m for j in jobs)} {m}" for m in Method)
    level = "ok" if jobs or cfg.source != "collector" else "warn"
    note = "" if jobs else " (none yet: the collector's plan is fetched at start)"
    out.append(Check(level, "plan", f"{len(jobs)} jobs: {methods}{note}"))
    return jobs


def _sockets(cfg: ProbeConfig, jobs: list[Job]) -> Iterator[Check]:
    from probes.icmp.pinger import open_icmp_socket
    from probes.methods.traceroute import TraceSocket

    def family(job: Job) -> int:
        return socket.AF_INET6 if job.type_p.ip_version == 6 else socket.AF_INET

    for fam, src in sorted({(family(j), j.src_addr) for j in jobs if j.method is Method.ICMP}):
        yield _try(f"icmp from {src}", lambda f=fam, s=src: _bound(
            open_icmp_socket(f, cfg.icmp_mode)[0], s))
    for fam, src in sorted({(family(j), j.src_addr) for j in jobs
                            if j.method is Method.TRACEROUTE}):
        yield _try(f"traceroute from {src}", lambda f=fam, s=src: TraceSocket(f, s).close())
    for fam, src in sorted({(family(j), j.src_addr) for j in jobs if j.method is Method.STAMP}):
        yield _try(f"stamp from {src}", lambda f=fam, s=src: _bound(
            socket.socket(f, socket.SOCK_DGRAM), s))


def _bound(sock: socket.socket, src: str) -> None:
    try:
        sock.bind((src, 0))
    finally:
        sock.close()


def _try(what: str, action: object) -> Check:
    try:
        action()  # type: ignore[operator]
    except IxmeterError as exc:
        return Check("FAIL", what, f"{exc} ({exc.hint})")
    except OSError as exc:
        return Check("FAIL", what, f"{exc.strerror}: is this address one of this host's?")
    return Check("ok", what, "socket opened and bound")


def _clock(cfg: ProbeConfig) -> Iterator[Check]:
    from probes.clock import kernel_status
    from probes.clock_sources import ClockMonitor

    found = ClockMonitor(cfg.clock_source, cfg.ptp_device).read() \
        if cfg.clock_source != "kernel" else None
    st = found or kernel_status()
    if not st.synced:
        yield Check("warn", "clock", f"not synchronised ({st.source}): one-way delays will be "
                    "NOT EVALUABLE; run chrony (or ptp4l + phc2sys)")
        return
    yield Check("ok", "clock", f"synchronised ({st.source}, {st.discipline}), bound "
                f"{st.max_error_ns / 1e6:.3f} ms")


def _collector(cfg: ProbeConfig, served: list[dict[str, object]]) -> Iterator[Check]:
    url = cfg.collector_url.rstrip("/")
    try:
        with httpx.Client(timeout=10) as client:
            health = client.get(url + "/healthz")
            yield Check("ok" if health.status_code == 200 else "FAIL", "collector",
                        f"{url}/healthz answered HTTP {health.status_code}")
            yield from _plan(cfg, client, served)
    except httpx.HTTPError as exc:
        yield Check("FAIL", "collector", f"{url} unreachable ({exc}): check collector_url, "
                    "the firewall and the collector")


def _plan(cfg: ProbeConfig, client: httpx.Client, served_out: list[dict[str, object]]
          ) -> Iterator[Check]:
    from probes.plan import plan_path, rotation_note

    try:
        key = upload_key(cfg)
    except IxmeterError:
        return
    path = plan_path(cfg.probe_id)
    from ixmeter.core.wire import sign

    answer = client.get(cfg.collector_url.rstrip("/") + path,
                        headers=sign(key, cfg.probe_id, "GET", path, b"", time.time()))
    if answer.status_code in (401, 403):
        yield Check("FAIL", "key", f"the collector refused this probe's key (HTTP "
                    f"{answer.status_code}): add it with 'ixmeter keys new --probe "
                    f"{cfg.probe_id}' on the collector")
        return
    if answer.status_code != 200:
        level = "FAIL" if cfg.source == "collector" else "ok"
        yield Check(level, "collector plan", f"HTTP {answer.status_code} (the key is "
                    f"accepted){'' if level == 'ok' else ': start the collector with --inventory'}")
        return
    signed = plan_format.SignedPlan(answer.content, answer.headers.get(plan_format.HEADER, ""))
    served = plan_format.verify(signed, [key])
    served_out.append(served)
    note = rotation_note(served, key)
    yield Check("warn" if note else "ok", "collector plan",
                note or f"{len(served['plan'].get('targets', []))} targets, signed")


def main(config: Path) -> int:
    """Print the report; 1 if any check failed."""
    checks = run_checks(config)
    for check in checks:
        print(check.line())
    return 1 if any(c.level == "FAIL" for c in checks) else 0
