"""Absolute-deadline timers on CLOCK_MONOTONIC through libc ``timerfd_create(2)`` and
``timerfd_settime(2)`` (Python 3.11 has no ``os.timerfd_*``).

The file descriptor becomes readable when the deadline passes, so an event loop can wait on it;
timerfd wakes with the kernel's high-resolution timers, not the millisecond-grained event-loop
timeouts (see /work/shared/testbed-timing.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os

CLOCK_MONOTONIC = 1
TFD_TIMER_ABSTIME = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec),
                                  ctypes.c_void_p]


class TimerFd:
    """One non-blocking CLOCK_MONOTONIC timerfd, armed at absolute ``time.monotonic_ns()``."""

    def __init__(self) -> None:
        fd = _libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_create: {os.strerror(err)}")
        self.fd: int = fd
        self.armed_ns: int | None = None

    def arm(self, deadline_ns: int) -> None:
        """Fire at ``deadline_ns`` (CLOCK_MONOTONIC); 0 disarms."""
        spec = _Itimerspec()
        spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(max(deadline_ns, 0), 1_000_000_000)
        if deadline_ns > 0 and spec.it_value.tv_sec == 0 and spec.it_value.tv_nsec == 0:
            spec.it_value.tv_nsec = 1
        if _libc.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(spec), None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")
        self.armed_ns = deadline_ns or None

    def disarm(self) -> None:
        if self.armed_ns is not None:
            self.arm(0)

    def clear(self) -> None:
        """Consume an expiry so the descriptor stops being readable."""
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)
        self.armed_ns = None

    def close(self) -> None:
        os.close(self.fd)
