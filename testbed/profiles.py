"""Link profiles: how the emulated carrier network routes and impairs each path.

A profile is data (built in, or a YAML file). Path delays come from geography: great-circle
distance (haversine) x ``route_factor`` / fibre speed, plus ``hop_ms`` per router and
``interconnect_ms`` where two carriers meet. Light in fibre travels at c / n with n ~ 1.468,
about 204 km/ms (ITU-T G.652 fibre; ITU-T G.114 Annex uses 5 us/km).

Built-in profiles:
  ``baseline``: inter-carrier traffic detours through an out-of-province hub (Wuhan or Guangzhou)
  across a congested interconnect: tens of ms RTT, about 1 % round-trip loss.
  ``direct``: inter-carrier traffic meets at the Changsha exchange point: a few ms, low loss.
Intra-carrier paths never cross an interconnect: sub-millisecond within a city.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inventory.schema import Selector
from ixmeter.core.errors import IxmeterError
from testbed.impair import Jitter, Loss


class ProfileError(IxmeterError):
    """A profile name or file that cannot be used."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JitterSpec(_Model):
    dist: Literal["none", "normal", "pareto"] = "none"
    sigma_ms: float = Field(default=0.0, ge=0)
    shape: float = Field(default=3.0, gt=0)
    cap_ms: float = Field(default=50.0, ge=0)

    def model(self) -> Jitter:
        return Jitter(self.dist, self.sigma_ms, self.shape, self.cap_ms)


class LossSpec(_Model):
    rate: float = Field(default=0.0, ge=0, lt=1)
    burst: float = Field(default=1.0, ge=1)

    def model(self) -> Loss:
        return Loss(self.rate, self.burst)


class PathClass(_Model):
    """Impairments of one class of path (intra-carrier or inter-carrier), per direction."""

    jitter: JitterSpec = JitterSpec()
    loss: LossSpec = LossSpec()


class Override(_Model):
    """Explicit settings for the paths from ``src`` to ``dst`` (and back unless one_way)."""

    src: Selector = Selector()
    dst: Selector = Selector()
    one_way: bool = False
    one_way_ms: float | None = Field(default=None, gt=0)
    jitter: JitterSpec | None = None
    loss: LossSpec | None = None
    reorder: float | None = Field(default=None, ge=0, le=1)
    duplicate: float | None = Field(default=None, ge=0, le=1)


class Profile(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    exchange: Literal["hub", "ixp"] = "ixp"
    hubs: list[str] = []  # hub site ids; empty: every site of kind 'hub'
    ixp: str | None = None  # exchange-point site id; None: the first of kind 'exchange_point'
    route_factor: float = Field(default=1.5, ge=1)
    fibre_km_per_ms: float = Field(default=204.0, gt=0)
    hop_ms: float = Field(default=0.02, ge=0)
    interconnect_ms: float = Field(default=0.0, ge=0)
    intra: PathClass = PathClass()
    inter: PathClass = PathClass()
    reorder: float = Field(default=0.0, ge=0, le=1)
    reorder_ms: float = Field(default=1.0, ge=0)
    duplicate: float = Field(default=0.0, ge=0, le=1)
    seed: int = 1
    overrides: list[Override] = []


BUILTIN: dict[str, Profile] = {
    "baseline": Profile(
        name="baseline",
        description="inter-carrier traffic detours through the Wuhan or Guangzhou hub over a "
        "congested interconnect (assumed 8 ms queueing each way, 0.5 % loss each way)",
        exchange="hub",
        hop_ms=0.05,
        interconnect_ms=8.0,
        intra=PathClass(jitter=JitterSpec(dist="normal", sigma_ms=0.01, cap_ms=0.1)),
        inter=PathClass(
            jitter=JitterSpec(dist="pareto", sigma_ms=0.5, shape=3.0, cap_ms=20.0),
            loss=LossSpec(rate=0.005, burst=2.0),
        ),
    ),
    "direct": Profile(
        name="direct",
        description="inter-carrier traffic meets at the Changsha exchange point (assumed 0.1 ms "
        "interconnect, 0.05 % loss each way)",
        exchange="ixp",
        hop_ms=0.02,
        interconnect_ms=0.1,
        intra=PathClass(jitter=JitterSpec(dist="normal", sigma_ms=0.01, cap_ms=0.1)),
        inter=PathClass(
            jitter=JitterSpec(dist="normal", sigma_ms=0.05, cap_ms=1.0),
            loss=LossSpec(rate=0.0005),
        ),
    ),
}


def load_profile(name_or_path: str | Path) -> Profile:
    """A built-in profile by name, or one read from a YAML file."""
    key = str(name_or_path)
    if key in BUILTIN:
        return BUILTIN[key]
    path = Path(key)
    if not path.is_file():
        raise ProfileError(f"no profile {key!r}",
                           hint=f"use one of {', '.join(BUILTIN)} or a YAML file path")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"cannot read profile {path}: {exc}") from None
    return profile_from_dict(data, str(path))


def profile_from_dict(data: object, source: str = "profile") -> Profile:
    """Validate a profile mapping; ``base: NAME`` starts from a built-in profile."""
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: expected a mapping")
    base = data.pop("base", None) if "base" in data else None
    if base is not None:
        if base not in BUILTIN:
            raise ProfileError(f"{source}: unknown base profile {base!r}")
        data = {**BUILTIN[base].model_dump(exclude_defaults=True), **data}
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ProfileError(f"{source}: {loc}: {first['msg']}") from None


def parse_schedule(text: str) -> list[tuple[float, str]]:
    """``"0:baseline,60:direct"`` -> [(0.0, "baseline"), (60.0, "direct")] (seconds after up)."""
    out: list[tuple[float, str]] = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        at, sep, name = item.partition(":")
        try:
            seconds = float(at)
        except ValueError:
            seconds = -1.0
        if not sep or not name or seconds < 0:
            raise ProfileError(f"bad schedule entry {item!r}", hint="write SECONDS:PROFILE,...")
        out.append((seconds, name))
    return sorted(out)
