"""Clocks for probes: one injectable clock, NTP 64-bit timestamps and the kernel's sync status.

- :class:`Clock` is the one clock a probe reads (wall for labels and STAMP timestamps, monotonic
  for intervals, STYLE.md §5); tests inject a fake one.
- NTP 64-bit timestamps (RFC 5905 §6): 32-bit seconds since 1900-01-01 and a 32-bit fraction of
  2^-32 s; ``ntp_sec = unix_sec + 2208988800``. Differences are taken in 64-bit two's complement
  so they survive the era wrap of 2036 (RFC 5905 §6, "era").
- PTPv2 truncated timestamps (RFC 8762 §4.2.1, RFC 8186 §2.3): 32-bit seconds since 1970 and
  32-bit nanoseconds, signalled by Z=1 in the Error Estimate.
- :func:`sync_status` gives the clock evidence, cached: ``adjtimex`` (STA_UNSYNC, maxerror,
  esterror, as owamp's ``GetTimespec`` does with ``ntp_gettime``) read at most once a second
  without forking, or chrony's or PTP's state when :mod:`probes.clock_sources` published one;
  it feeds the S bit and Error Estimate (RFC 4656 §4.1.2) and the "clocks unsynchronised" gate
  (methodology-notes §5).
- :func:`stepped` detects a clock step during a probe (RFC 2681 §2.5; 50 us is our policy).
"""

from __future__ import annotations

import ctypes
import functools
import time
from dataclasses import dataclass
from typing import Any, Protocol

NTP_UNIX_OFFSET_S = 2208988800  # seconds from 1900-01-01 to 1970-01-01 (RFC 5905 §6)
_NS = 1_000_000_000
_U32 = 1 << 32
_U64 = 1 << 64
STEP_TOLERANCE_NS = 50_000  # our policy (methodology-notes §6)


class Clock(Protocol):
    """The clock a probe reads; wall is UTC (CLOCK_REALTIME), mono is CLOCK_MONOTONIC."""

    def wall_ns(self) -> int: ...

    def mono_ns(self) -> int: ...


class SystemClock:
    """The host's clocks: ``time.time_ns`` and ``time.monotonic_ns``."""

    def wall_ns(self) -> int:
        return time.time_ns()

    def mono_ns(self) -> int:
        return time.monotonic_ns()


# --- NTP 64-bit format (RFC 5905 §6) --------------------------------------------------------


def unix_ns_to_ntp(unix_ns: int) -> int:
    """Unix nanoseconds -> NTP 64-bit timestamp (seconds mod 2^32, fraction rounded to nearest)."""
    sec, rem = divmod(unix_ns, _NS)
    frac = (rem * _U32 + _NS // 2) // _NS  # at most 2^32 - 4: never carries into seconds
    return (((sec + NTP_UNIX_OFFSET_S) % _U32) << 32) | frac


def ntp_to_unix_ns(ntp: int, pivot_unix_ns: int | None = None) -> int:
    """NTP 64-bit timestamp -> Unix ns, choosing the era closest to ``pivot_unix_ns`` (RFC 5905 §6).

    Without a pivot, era 0 (1900-2036) is assumed.
    """
    if pivot_unix_ns is None:
        return _ntp_era0_ns(ntp) - NTP_UNIX_OFFSET_S * _NS
    return pivot_unix_ns + ntp_diff_ns(ntp, unix_ns_to_ntp(pivot_unix_ns))


def _ntp_era0_ns(ntp: int) -> int:
    sec, frac = ntp >> 32, ntp & (_U32 - 1)
    return sec * _NS + (frac * _NS + _U32 // 2) // _U32


def ntp_diff_ns(a: int, b: int) -> int:
    """``a - b`` in ns for NTP 64-bit timestamps, as 64-bit two's complement (RFC 5905 §6).

    Correct across the 2036 era wrap as long as the true difference is under 68 years.
    """
    d = (a - b) % _U64
    if d >= 1 << 63:
        d -= _U64
    return _frac_to_ns(d)


def _frac_to_ns(units: int) -> int:
    """Units of 2^-32 s -> ns, rounded half away from zero."""
    sign = -1 if units < 0 else 1
    return sign * ((abs(units) * _NS + _U32 // 2) >> 32)


# --- PTPv2 truncated format (RFC 8762 §4.2.1, Z=1) -----------------------------------------


def unix_ns_to_ptp(unix_ns: int) -> int:
    """Unix ns -> 64-bit PTPv2 truncated timestamp (32-bit s since 1970, 32-bit ns)."""
    sec, ns = divmod(unix_ns, _NS)
    return ((sec % _U32) << 32) | ns


def ptp_to_unix_ns(ptp: int) -> int:
    """64-bit PTPv2 truncated timestamp -> Unix ns (era 0, valid until 2106)."""
    return (ptp >> 32) * _NS + (ptp & (_U32 - 1))


def timestamp_to_unix_ns(raw: int, ptp_format: bool, pivot_unix_ns: int | None = None) -> int:
    """A STAMP timestamp in NTP (Z=0) or PTP (Z=1) format -> Unix ns (RFC 8762 §4.2.1)."""
    return ptp_to_unix_ns(raw) if ptp_format else ntp_to_unix_ns(raw, pivot_unix_ns)


# --- clock steps (RFC 2681 §2.5) ------------------------------------------------------------


def stepped(wall0: int, mono0: int, wall1: int, mono1: int,
            tolerance_ns: int = STEP_TOLERANCE_NS) -> bool:
    """True if the wall clock moved other than the monotonic clock by more than ``tolerance_ns``.

    A step or slew of the wall clock during a probe corrupts that probe (RFC 2681 §2.5); 50 us is
    ixmeter's policy (methodology-notes §6).
    """
    return abs((wall1 - wall0) - (mono1 - mono0)) > tolerance_ns


# --- kernel sync status via adjtimex (RFC 4656 §4.1.2 S bit; RFC 5905 §4 bound) --------------

STA_UNSYNC = 0x0040
STA_NANO = 0x2000
TIME_ERROR = 5
UNSYNC_MAX_ERROR_NS = 16_000_000_000  # the kernel's NTP_PHASE_LIMIT-derived 16 s "unknown"
KERNEL_REFRESH_NS = 1_000_000_000  # adjtimex is read at most once a second (a syscall, no fork)


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """The host clock's sync state and where it was read.

    ``max_error_ns`` is a bound on the clock's offset from UTC (the kernel's ``maxerror``,
    chrony's root distance plus its offset, or PTP's offset from the grandmaster);
    ``est_error_ns`` an estimate; ``source`` the reader (``adjtimex``, ``chrony``, ``ptp``,
    ``unknown``); ``discipline`` what disciplines the clock (``ntp``, ``ptp``, ``none``), for
    the STAMP sync-source code point (RFC 8972 §4.3).
    """

    synced: bool
    max_error_ns: int
    est_error_ns: int
    source: str
    discipline: str = "ntp"


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """``struct timex`` from <sys/timex.h> (Linux, LP64 and ILP32 alike via ctypes alignment)."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
        ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("_pad", ctypes.c_int * 11),
    ]


UNKNOWN = ClockStatus(False, UNSYNC_MAX_ERROR_NS, UNSYNC_MAX_ERROR_NS, "unknown", "none")


@functools.cache
def _adjtimex() -> Any:
    """libc's ``ntp_adjtime`` (or ``adjtimex``) from the symbols already in the process
    (``dlopen(NULL)``): no ``ctypes.util.find_library``, which forks ``ldconfig -p``."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    return getattr(libc, "ntp_adjtime", None) or getattr(libc, "adjtimex", None)


def kernel_status() -> ClockStatus:
    """Read the kernel clock state with ``adjtimex(modes=0)`` (read-only, needs no privilege).

    Unsynchronised if STA_UNSYNC is set or the call returns TIME_ERROR. ``maxerror`` and
    ``esterror`` are in microseconds. "unknown, unsynchronised" where the call is unavailable.
    """
    func = _adjtimex()
    if func is None:
        return UNKNOWN
    tx = _Timex()
    state = int(func(ctypes.byref(tx)))
    if state < 0:
        return UNKNOWN
    return status_from_timex(state, tx.status, tx.maxerror, tx.esterror)


def status_from_timex(state: int, status: int, maxerror_us: int, esterror_us: int) -> ClockStatus:
    """Pure mapping of adjtimex results to :class:`ClockStatus` (RFC 4656 §4.1.2 S bit)."""
    synced = state != TIME_ERROR and not status & STA_UNSYNC
    return ClockStatus(synced, max(0, maxerror_us) * 1000, max(0, esterror_us) * 1000, "adjtimex")


class _Cached:
    """The process's clock evidence: the kernel's, re-read at most once per
    :data:`KERNEL_REFRESH_NS`, unless a better source (chrony, PTP: :mod:`probes.clock_sources`)
    was published with :meth:`publish` and is still fresh."""

    def __init__(self) -> None:
        self.kernel: ClockStatus | None = None
        self.kernel_at = 0
        self.better: ClockStatus | None = None
        self.better_until = 0

    def status(self) -> ClockStatus:
        now = time.monotonic_ns()
        if self.better is not None and now < self.better_until:
            return self.better
        if self.kernel is None or now - self.kernel_at >= KERNEL_REFRESH_NS:
            self.kernel, self.kernel_at = kernel_status(), now
        return self.kernel

    def publish(self, status: ClockStatus | None, valid_ns: int) -> None:
        self.better = status
        self.better_until = time.monotonic_ns() + valid_ns if status is not None else 0


_CACHE = _Cached()


def sync_status() -> ClockStatus:
    """This host's clock evidence, cached: never forks, at most one ``adjtimex`` a second
    (STAMP sessions call it once a second each, on the event loop)."""
    return _CACHE.status()


def publish_status(status: ClockStatus | None, valid_ns: int) -> None:
    """Make ``status`` (read from chrony or PTP) what :func:`sync_status` returns for
    ``valid_ns``; None forgets it (back to the kernel's)."""
    _CACHE.publish(status, valid_ns)
