"""A copy of the emulated network in the demo: its role, profile, testbed instance and store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from testbed.api import Testbed


@dataclass
class Network:
    """One copy of the emulated network: its role, profile, testbed instance and store."""

    role: str  # "baseline" | "current"
    profile: str  # testbed profile: "baseline" (detour) | "direct"
    instance: str
    out: Path
    index: int = 0
    tb: Testbed | None = None

    @property
    def db(self) -> Path:
        return self.out / f"{self.role}.db"

    @property
    def rundir(self) -> Path:
        return self.out / "run" / self.role

    @property
    def socket(self) -> Path:
        return self.rundir / "collector.sock"

    @property
    def group(self) -> str:
        """Suffix of this copy's process groups (``probe-baseline`` ...)."""
        return self.role


def networks(out: Path, instance: str) -> list[Network]:
    """The two copies: baseline (detour) and current (direct)."""
    return [Network("baseline", "baseline", f"{instance}-b", out, 0),
            Network("current", "direct", f"{instance}-c", out, 1)]
