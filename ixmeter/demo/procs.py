"""The demo's child processes: started in their own session (so a Ctrl-C in the terminal reaches
only the demo, which then stops them in order), told to die with the demo (``PR_SET_PDEATHSIG``,
prctl(2)) and stopped with a signal, then SIGKILL after a grace period."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One started process, its output file and the group it belongs to."""

    name: str
    group: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


class Children:
    """Every process the demo started, by group (``collector``, ``reflector``, ``probe``)."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self._files: list[IO[bytes]] = []

    def start(self, name: str, group: str, argv: Sequence[str], log: Path,
              env: dict[str, str] | None = None) -> Child:
        log.parent.mkdir(parents=True, exist_ok=True)
        out = open(log, "ab")  # noqa: SIM115 - closed in close()
        self._files.append(out)
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_with_parent, env=env)
        child = Child(name, group, proc, log)
        self.children.append(child)
        return child

    def group(self, group: str) -> list[Child]:
        """The children of ``group``, or of every group that starts with ``group-``."""
        return [c for c in self.children
                if c.group == group or c.group.startswith(f"{group}-")]

    def dead(self) -> list[Child]:
        """Children that exited although nobody stopped them."""
        return [c for c in self.children if not c.alive()]

    def stop(self, children: Iterable[Child], sig: int = signal.SIGTERM,
             grace_s: float = 10.0) -> dict[str, int]:
        """Signal each child, wait up to ``grace_s`` for all, SIGKILL the rest; exit codes."""
        targets = [c for c in children if c.alive()]
        for c in targets:
            with contextlib.suppress(ProcessLookupError):
                c.proc.send_signal(sig)
        deadline = time.monotonic() + grace_s
        for c in targets:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for c in targets:
            if c.alive():
                with contextlib.suppress(ProcessLookupError):
                    c.proc.kill()
                c.proc.wait()
        return {c.name: int(c.proc.returncode) for c in targets}

    def stop_all(self, grace_s: float = 5.0) -> None:
        """Probes first, then reflectors, bridges, collectors and anything else (nothing left
        running). A group matches by prefix: ``probe`` stops ``probe-baseline`` too."""
        for group in ("probe", "reflector", "bridge", "collector", ""):
            self.stop([c for c in self.children if c.group.startswith(group)],
                      signal.SIGTERM if group != "collector" else signal.SIGINT, grace_s)
        self.stop(self.children, signal.SIGKILL, 1.0)

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files.clear()


def wait_until(predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.2) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()


def ixmeter_argv(*args: str) -> list[str]:
    """This interpreter running the ixmeter CLI (works inside namespaces and without PATH)."""
    return [sys.executable, "-m", "ixmeter.cli", *args]
