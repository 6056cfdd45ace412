"""The collector's one writer: blocking store calls run in order on one long-lived thread.

This replaces ``trio.to_thread.run_sync(..., limiter=CapacityLimiter(1))``, which gave the same
one-at-a-time order but cost ~0.1 ms of the collector's one core per call (a thread taken from
trio's cache and named on every call, a context copy, the limiter's own checkpoints); a queue
to a thread that stays costs ~0.02 ms (docs/collector.md, "Measured").

Semantics are ``to_thread.run_sync``'s without ``abandon_on_cancel``: the caller waits for its
call to finish even if cancelled meanwhile (a commit is never abandoned half-way), the result
or exception is delivered to the caller, and a cancellation takes effect once it returns. Calls
run first come, first served. The thread starts on the first call in a trio run and ends with
:meth:`StoreThread.stop` or when its run ends.

``idle``, if given, runs on the thread once the queue has stayed empty for ``idle_s`` after some
calls (once per quiet spell, not every ``idle_s``): the collector folds the rollups it holds
there, so readers find them folded soon after a burst of batches.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import outcome
import trio

_Job = tuple[Callable[..., Any], tuple[Any, ...], trio.lowlevel.Task]
IDLE_S = 0.5
log = logging.getLogger("ixmeter.collector")


class StoreThread:
    """Runs ``fn(*args)`` on one thread, one call at a time, in the order they were made."""

    def __init__(self, name: str = "ixmeter store", idle: Callable[[], Any] | None = None,
                 idle_s: float = IDLE_S) -> None:
        self.name, self.idle, self.idle_s = name, idle, idle_s
        self._jobs: queue.SimpleQueue[_Job | None] | None = None
        self._token: trio.lowlevel.TrioToken | None = None

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the store thread; its result, or its exception raised here."""
        await trio.lowlevel.checkpoint_if_cancelled()
        token = trio.lowlevel.current_trio_token()
        if self._jobs is None or self._token is not token:
            self.stop()
            self._start(token)
        assert self._jobs is not None
        self._jobs.put((fn, args, trio.lowlevel.current_task()))
        return await trio.lowlevel.wait_task_rescheduled(
            lambda _: trio.lowlevel.Abort.FAILED)

    def stop(self) -> None:
        """End the thread once the calls already made have run (idempotent)."""
        if self._jobs is not None:
            self._jobs.put(None)
        self._jobs = self._token = None

    def _start(self, token: trio.lowlevel.TrioToken) -> None:
        jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._jobs, self._token = jobs, token
        threading.Thread(target=_work, args=(jobs, token, self.idle, self.idle_s),
                         name=self.name, daemon=True).start()


def _work(jobs: queue.SimpleQueue[_Job | None], token: trio.lowlevel.TrioToken,
          idle: Callable[[], Any] | None, idle_s: float) -> None:
    busy = False  # calls ran since the last idle()
    while True:
        try:
            job = jobs.get(timeout=idle_s) if busy and idle is not None else jobs.get()
        except queue.Empty:
            busy = False
            _quietly(idle)
            continue
        if job is None:
            return
        fn, args, task = job
        result = outcome.capture(fn, *args)
        busy = True
        try:
            token.run_sync_soon(trio.lowlevel.reschedule, task, result)
        except trio.RunFinishedError:
            return


def _quietly(fn: Callable[[], Any] | None) -> None:
    """Background work: a failure is logged, and the thread goes on serving calls."""
    try:
        if fn is not None:
            fn()
    except Exception:
        log.exception("idle work on the store thread failed")
