"""Clock evidence from chrony and PTP, read where present and cached (no fork per probe).

- **chrony**: ``chronyc -c tracking`` (CSV: reference id, name, stratum, reference time, system
  time offset, last offset, RMS offset, frequency, residual frequency, skew, root delay, root
  dispersion, update interval, leap status). The bound on the clock's offset from UTC is the
  root distance, root delay / 2 + root dispersion (RFC 5905 §11.2 "root distance", chrony's
  "maximum error" for its clients), plus the system clock's own remaining offset. A reference
  id of a PHC refclock (``PHC0``...) means the clock follows PTP.
- **PTP** (linuxptp): ``pmc -u -b 0 'GET TIME_STATUS_NP'`` gives ``master_offset`` (the port's
  PHC from the grandmaster, ns) and ``gmPresent``; the system clock's offset from the PHC is read
  directly (``clock_gettime`` on the PHC's dynamic clock id between two system reads), so the
  bound is ``|master_offset| + |system - PHC| +`` half the read bracket.

Each read forks once (``chronyc``/``pmc``), from a worker thread every
:data:`REFRESH_S` (:class:`ClockMonitor`), never per probe; what it finds is published to
:func:`probes.clock.sync_status`, which the STAMP sessions read. Where neither answers, the
kernel's ``adjtimex`` state stands.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence

import trio

from probes.clock import ClockStatus, kernel_status, publish_status

REFRESH_S = 16.0
RUN_TIMEOUT_S = 5.0
_NS = 1_000_000_000
log = logging.getLogger("ixmeter.probe.clock")


def parse_chrony_tracking(text: str) -> ClockStatus | None:
    """``chronyc -c tracking`` output -> :class:`ClockStatus`; None if it is not that CSV."""
    fields = text.strip().splitlines()[0].split(",") if text.strip() else []
    if len(fields) < 14:
        return None
    try:
        refid, stratum = int(fields[0], 16), int(fields[2])
        offset, root_delay, root_disp = (float(fields[i]) for i in (4, 10, 11))
    except ValueError:
        return None
    leap = fields[13].strip()
    synced = refid != 0 and stratum < 16 and leap != "Not synchronised"
    bound = abs(offset) + root_delay / 2 + root_disp
    discipline = "ptp" if fields[0].upper().startswith("5048") else "ntp"  # "PH.." = PHC refclock
    return ClockStatus(synced, round(bound * _NS), round(abs(offset) * _NS), "chrony",
                       discipline if synced else "none")


def parse_pmc_time_status(text: str) -> tuple[int, bool] | None:
    """``master_offset`` (ns) and ``gmPresent`` from pmc's ``GET TIME_STATUS_NP`` answer."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            values[parts[0]] = parts[1]
    try:
        return int(values["master_offset"]), values["gmPresent"] == "true"
    except (KeyError, ValueError):
        return None


def ptp_status(master_offset_ns: int, gm_present: bool, phc_minus_sys_ns: int | None,
               bracket_ns: int) -> ClockStatus:
    """The system clock's bound when it follows a PTP-disciplined PHC (module docstring)."""
    if phc_minus_sys_ns is None:
        return ClockStatus(False, kernel_status().max_error_ns, abs(master_offset_ns), "ptp",
                           "none")
    bound = abs(master_offset_ns) + abs(phc_minus_sys_ns) + bracket_ns // 2 + 1
    return ClockStatus(gm_present, bound, abs(master_offset_ns) + abs(phc_minus_sys_ns),
                       "ptp", "ptp" if gm_present else "none")


def phc_offset_ns(device: str) -> tuple[int, int] | None:
    """(PHC - system clock, read bracket) in ns for a PTP hardware clock device, or None.

    The PHC is read with ``clock_gettime`` on its dynamic clock id (``FD_TO_CLOCKID``,
    Documentation/driver-api/ptp.rst) between two CLOCK_REALTIME reads; no fork."""
    try:
        fd = os.open(device, os.O_RDONLY)
    except OSError:
        return None
    try:
        clock_id = ((~fd) << 3) | 3
        before = time.clock_gettime_ns(time.CLOCK_REALTIME)
        phc = time.clock_gettime_ns(clock_id)
        after = time.clock_gettime_ns(time.CLOCK_REALTIME)
    except OSError:
        return None
    finally:
        os.close(fd)
    return phc - (before + after) // 2, after - before


Runner = Callable[[Sequence[str]], str | None]


def run_tool(argv: Sequence[str]) -> str | None:
    """A tool's standard output, or None if it is missing, fails or takes over 5 s."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, check=False,
                              timeout=RUN_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


class ClockMonitor:
    """Reads chrony, then PTP, where present; publishes what it found for twice the refresh
    period (a stale reading falls back to the kernel's). ``read`` is blocking (run it in a
    thread); ``run`` does so every ``refresh_s`` until cancelled."""

    def __init__(self, mode: str = "auto", ptp_device: str = "/dev/ptp0", *,
                 runner: Runner = run_tool, refresh_s: float = REFRESH_S) -> None:
        self.mode, self.ptp_device, self.runner = mode, ptp_device, runner
        self.refresh_s = refresh_s
        self.last: ClockStatus | None = None

    def read(self) -> ClockStatus | None:
        """One reading from the configured source (``auto``: chrony, else PTP); None when
        neither answers (the kernel's state stands)."""
        found = None
        if self.mode in ("auto", "chrony"):
            found = self._chrony()
        if found is None and self.mode in ("auto", "ptp"):
            found = self._ptp()
        self.last = found
        publish_status(found, round(2 * self.refresh_s * _NS))
        return found

    def _chrony(self) -> ClockStatus | None:
        out = self.runner(["chronyc", "-c", "-n", "tracking"])
        return parse_chrony_tracking(out) if out else None

    def _ptp(self) -> ClockStatus | None:
        out = self.runner(["pmc", "-u", "-b", "0", "GET TIME_STATUS_NP"])
        parsed = parse_pmc_time_status(out) if out else None
        if parsed is None:
            return None
        phc = phc_offset_ns(self.ptp_device)
        return ptp_status(parsed[0], parsed[1], phc[0] if phc else None, phc[1] if phc else 0)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        if self.mode == "kernel":
            task_status.started()
            return
        await trio.to_thread.run_sync(self.read)
        self._log()
        task_status.started()
        while True:
            await trio.sleep(self.refresh_s)
            await trio.to_thread.run_sync(self.read)

    def _log(self) -> None:
        st = self.last
        if st is None:
            log.info("clock: neither chrony nor PTP answered; using the kernel's adjtimex state")
        else:
            log.info("clock: %s, %s, bound %.3f ms", st.source,
                     "synchronised" if st.synced else "NOT synchronised", st.max_error_ns / 1e6)
