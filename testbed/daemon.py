"""Start, stop and talk to emulator daemons; each instance keeps its state in a run directory
(``/run/ixmeter-testbed/<instance>/``: config.json, state.json, ctl.sock, emulator.log).

A run whose emulator died (kill -9, crash) leaves namespaces and a stale run directory; the next
``start`` of the same instance removes both before building anew.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from ixmeter.core.errors import IxmeterError
from testbed import netns

INSTANCE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,15}$")
DEFAULT_INSTANCE = "main"
# Busy-wait before each release: covers this VM's timer wake-up from a halted vCPU (docs/testbed.md:
# 50 us left a median release lateness of 11-22 us, 150 us 0.6 us, at ~15 % more of a core).
DEFAULT_SPIN_US = 150.0


class TestbedError(IxmeterError):
    """A testbed that cannot be started, found or controlled."""

    __test__ = False  # not a pytest test class


def run_root() -> Path:
    """Where instances keep their run directories (``IXMETER_TESTBED_RUN`` overrides;
    unprivileged users get one under ``$XDG_RUNTIME_DIR`` or the temp directory)."""
    if "IXMETER_TESTBED_RUN" in os.environ:
        return Path(os.environ["IXMETER_TESTBED_RUN"])
    if os.geteuid() == 0:
        return Path("/run/ixmeter-testbed")
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"ixmeter-testbed-{os.getuid()}"


def rundir(instance: str) -> Path:
    if not INSTANCE_RE.match(instance):
        raise TestbedError(f"bad instance name {instance!r}",
                           hint="use 1-16 lowercase letters, digits and '-'")
    return run_root() / instance


def _alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"testbed.emulator" in cmdline or b"testbed.delayline" in cmdline


def read_state(instance: str) -> dict[str, Any] | None:
    """The state of a running instance, or None when it is not up."""
    try:
        state: dict[str, Any] = json.loads((rundir(instance) / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state if _alive(int(state.get("pid", 0))) else None


def instances() -> list[str]:
    """Names of every instance with a run directory (running or stale)."""
    root = run_root()
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def cleanup(instance: str) -> list[str]:
    """Remove a dead instance's namespaces and run directory; returns namespaces deleted."""
    gone = netns.delete_namespaces(f"ixm-{instance}-")
    shutil.rmtree(rundir(instance), ignore_errors=True)
    return gone


USERNS_PREFIX = ["unshare", "-Urnm", "--propagation", "private"]


def run_main(module: str, main: Callable[[Path], Awaitable[None]],
             argv: Sequence[str] | None = None) -> int:
    """The command line of a daemon module that :func:`start` runs: ``python -m MODULE RUNDIR``
    runs ``main(RUNDIR)`` under trio."""
    import trio  # the daemons need it; the CLI that imports this module does not

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(f"usage: python -m {module} RUNDIR", file=sys.stderr)
        return 2
    trio.run(main, Path(args[0]))
    return 0


def start(instance: str, config: dict[str, Any], *, module: str = "testbed.emulator",
          timeout_s: float = 60.0) -> dict[str, Any]:
    """Start a daemon for ``instance`` with ``config`` and wait until it reports ready."""
    if read_state(instance) is not None:
        raise TestbedError(f"testbed {instance!r} is already up",
                           hint=f"run 'ixmeter testbed down --instance {instance}' first")
    cleanup(instance)
    rd = rundir(instance)
    rd.mkdir(parents=True, exist_ok=True)
    (rd / "config.json").write_text(json.dumps({**config, "instance": instance}, indent=1))
    log = open(rd / "emulator.log", "ab")  # noqa: SIM115 - handed to the child
    with log:
        # setsid -f: the daemon runs in its own session, reparented to init, so it outlives
        # (and is never a zombie of) the process that started it.
        # In userns mode the daemon gets its own user, mount and network namespaces
        # (unshare -Urnm): its host namespaces live and die with it.
        prefix = USERNS_PREFIX if config.get("mode") == "userns" else []
        subprocess.run(["setsid", "-f", *prefix, sys.executable, "-m", module, str(rd)],
                       stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=True,
                       cwd=str(Path(__file__).resolve().parent.parent))
    deadline = time.monotonic() + timeout_s
    pid = 0
    while time.monotonic() < deadline:
        state = read_state(instance)
        if state is not None and state.get("ready"):
            return state
        pid = pid or _read_pid(rd)
        if pid and not _alive(pid):
            break
        time.sleep(0.05)
    tail = _tail(rd / "emulator.log")
    if pid and _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    cleanup(instance)
    raise TestbedError(f"testbed {instance!r} did not start: {tail or 'no output'}")


def _read_pid(rd: Path) -> int:
    try:
        return int((rd / "pid").read_text())
    except (OSError, ValueError):
        return 0


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def stop(instance: str, timeout_s: float = 15.0) -> bool:
    """Stop ``instance`` (SIGTERM, then SIGKILL) and remove everything it left; True if a
    running daemon was stopped."""
    state = read_state(instance)
    was_up = state is not None
    if state is not None:
        pid = int(state["pid"])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid) and time.monotonic() < deadline + 5:
                time.sleep(0.05)
    cleanup(instance)
    return was_up


def control(instance: str, request: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
    """Send one JSON request to the daemon's control socket and return its JSON reply."""
    path = rundir(instance) / "ctl.sock"
    if read_state(instance) is None:
        raise TestbedError(f"testbed {instance!r} is not up",
                           hint="start it with 'ixmeter testbed up'")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            raise TestbedError(f"testbed {instance!r} control socket: {exc}") from None
    reply: dict[str, Any] = json.loads(data or b"{}")
    if not reply.get("ok"):
        raise TestbedError(f"testbed {instance!r}: {reply.get('error', 'no reply')}")
    return reply
