"""Inventory schema: carriers, cities, sites, probes, targets, measurement specs, baselines and
policy targets. Pydantic v2 models; cross-references are checked in :mod:`inventory.validate`.

Nothing here knows about Hunan or Shandong: a policy target is data (statistic, scope,
comparison, aggregation window) that the analyzer evaluates as written.
"""

from __future__ import annotations

import enum
import ipaddress
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]

# Statistics a policy target or baseline may name. Each is defined in docs/methodology.md.
KNOWN_STATISTICS: dict[str, str] = {
    "rtt_median": "median round-trip delay, conditional on arrival (RFC 2681 §4.1, RFC 6703 §5.3)",
    "rtt_mean": "mean round-trip delay, conditional on arrival (RFC 6703 §5.2)",
    "rtt_p95": "95th percentile of round-trip delay, conditional (RFC 2330 §11.3)",
    "rtt_p99": "99th percentile of round-trip delay, conditional (RFC 2330 §11.3)",
    "rtt_min": "minimum round-trip delay (RFC 2681 §4.3)",
    "loss_ratio": "round-trip packet loss ratio (RFC 7680 §4.1, RFC 6673 §4.3)",
    "owd_median": "median one-way delay, each direction (RFC 7679 §5.2)",
    "owd_p99": "99th percentile one-way delay, each direction (RFC 7679 §5.1)",
    "owd_max": "maximum one-way delay, each direction (RFC 7679 §5.4)",
    "pdv_p99": "packet delay variation p99 - min (RFC 5481 §4.2)",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Names(_Model):
    """A name in Chinese and English."""

    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class SiteKind(enum.StrEnum):
    DATA_CENTRE = "data_centre"
    EXCHANGE_POINT = "exchange_point"
    COMPUTING_CENTRE = "computing_centre"
    HUB = "hub"  # out-of-province hub (e.g. another backbone direct-connect point)
    EDGE = "edge"


class MethodName(enum.StrEnum):
    ICMP = "icmp"
    STAMP = "stamp"
    TRACEROUTE = "traceroute"


def _check_prefix(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not an address prefix: {exc}") from None
    return value


def _check_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None
    return value


class Carrier(_Model):
    id: Id
    name: Names
    asns: list[Annotated[int, Field(ge=1, le=4294967295)]] = []
    prefixes: list[str] = []
    assumption: str | None = None

    _prefixes = field_validator("prefixes", mode="after")(
        lambda cls, v: [_check_prefix(p) for p in v])


class City(_Model):
    id: Id
    name: Names
    province: Id
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    cluster: Id | None = None  # city cluster, e.g. Chang-Zhu-Tan


class Site(_Model):
    id: Id
    kind: SiteKind
    name: Names
    city: Id
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    carriers: list[Id] = Field(min_length=1)
    prefixes: list[str] = []
    assumption: str | None = None

    _prefixes = field_validator("prefixes", mode="after")(
        lambda cls, v: [_check_prefix(p) for p in v])

    @model_validator(mode="after")
    def _coordinates(self) -> Site:
        if self.lat is None or self.lon is None:
            raise ValueError("missing coordinates: give both lat and lon (WGS-84)")
        return self


class Reflector(_Model):
    """A STAMP session-reflector listening at the endpoint (RFC 8762 §4.3)."""

    port: int = Field(default=862, ge=1, le=65535)
    mode: Literal["stateful", "stateless"] = "stateful"
    authenticated: bool = False


class Endpoint(_Model):
    """A probe (sends) or a target (answers only) at one site, of one carrier."""

    id: Id
    site: Id
    carrier: Id
    addresses: list[str] = Field(min_length=1)
    methods: list[MethodName] = [MethodName.ICMP, MethodName.STAMP, MethodName.TRACEROUTE]
    reflector: Reflector | None = Reflector()
    assumption: str | None = None

    _addresses = field_validator("addresses", mode="after")(
        lambda cls, v: [_check_address(a) for a in v])


class Probe(Endpoint):
    """A probe agent: measures from its site towards the targets its specs select."""


class Target(Endpoint):
    """An endpoint that only answers (ICMP echo, STAMP reflector), e.g. at an exchange point."""


class Selector(_Model):
    """Selects endpoints or paths. Empty lists mean 'any'."""

    carriers: list[Id] = []
    sites: list[Id] = []
    kinds: list[SiteKind] = []
    cities: list[Id] = []
    provinces: list[Id] = []


class MeasurementSpec(_Model):
    """How to measure (RFC 2330 §11.1 sampling; RFC 7680 §2.8.2 Tmax)."""

    id: Id
    method: MethodName
    rate_pps: float = Field(description="packets per second per path")
    schedule: Literal["poisson", "periodic"] = "poisson"
    size: int = Field(default=64, ge=14, le=9000)
    dscp: int = Field(default=0, ge=0, le=63)
    tmax_s: float = Field(default=3.0, gt=0, le=60)
    ip_versions: list[Literal[4, 6]] = [4, 6]
    sources: Selector = Selector()
    destinations: Selector = Selector()

    @field_validator("rate_pps")
    @classmethod
    def _rate(cls, v: float) -> float:
        if not 0 < v <= 1000:
            raise ValueError(f"impossible rate {v} packets/s per path: must be in (0, 1000]")
        return v


class Window(_Model):
    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError("window ends before it starts")
        return self


class Document(_Model):
    """The source a policy target or declared baseline comes from."""

    title: Names
    issuer: str
    year: int = Field(ge=1990, le=2100)
    reference: str | None = None


class PathScope(_Model):
    """Which directed paths a target covers, by relation between the two ends."""

    carriers: Literal["inter", "intra", "any"] = "any"
    cities: Literal["same", "different", "any"] = "any"
    clusters: Literal["same", "different", "any"] = "any"
    within_province: Id | None = None
    sources: Selector = Selector()
    destinations: Selector = Selector()


class DeclaredValue(_Model):
    statistic: str
    value: float
    unit: Literal["ms", "ratio"]
    scope: PathScope = PathScope()


class Baseline(_Model):
    id: Id
    kind: Literal["measured", "imported", "declared"]
    window: Window | None = None
    files: list[str] = []
    values: list[DeclaredValue] = []
    source: Document | None = None

    @model_validator(mode="after")
    def _complete(self) -> Baseline:
        need = {"measured": self.window, "imported": self.files, "declared": self.values}
        if not need[self.kind]:
            field = {"measured": "window", "imported": "files", "declared": "values"}[self.kind]
            raise ValueError(f"a {self.kind} baseline needs '{field}'")
        if self.kind == "declared" and self.source is None:
            raise ValueError("a declared baseline must name its source document")
        return self


class Comparison(_Model):
    """relative: current/baseline <= 1 - reduction; absolute: statistic < below_ms;
    reference: statistic(scope)/statistic(reference scope) <= at_most_ratio."""

    kind: Literal["relative", "absolute", "reference"]
    reduction: float | None = Field(default=None, gt=0, lt=1)
    below_ms: float | None = Field(default=None, gt=0)
    below_ratio: float | None = Field(default=None, gt=0, le=1)
    at_most_ratio: float | None = Field(default=None, gt=0)
    reference: PathScope | None = None

    @model_validator(mode="after")
    def _complete(self) -> Comparison:
        if self.kind == "relative" and self.reduction is None:
            raise ValueError("a relative comparison needs 'reduction' (e.g. 0.8 for -80%)")
        if self.kind == "absolute" and self.below_ms is None and self.below_ratio is None:
            raise ValueError("an absolute comparison needs 'below_ms' or 'below_ratio'")
        if self.kind == "reference" and (self.reference is None or self.at_most_ratio is None):
            raise ValueError("a reference comparison needs 'reference' and 'at_most_ratio'")
        return self


class Aggregation(_Model):
    """Over which time the statistic is taken: the whole window, or busy hours on N days."""

    window: Literal["whole", "busy_hours"] = "whole"
    busy_hours: list[Annotated[int, Field(ge=0, le=23)]] = []  # local hours, Asia/Shanghai
    consecutive_days: int | None = Field(default=None, ge=1, le=366)
    timezone: str = "Asia/Shanghai"


class PolicyTarget(_Model):
    id: Id
    name: Names
    statistic: str
    scope: PathScope
    comparison: Comparison
    aggregation: Aggregation = Aggregation()
    per: Literal["scope", "carrier_pair", "city_pair", "path"] = "carrier_pair"
    method: MethodName | None = None
    baseline: Id | None = None
    document: Document

    @field_validator("statistic")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in KNOWN_STATISTICS:
            raise ValueError(f"unknown statistic {v!r}; known: {', '.join(KNOWN_STATISTICS)}")
        return v


class Province(_Model):
    id: Id
    name: Names


class Inventory(_Model):
    """One inventory file: a province's (or a deployment's) whole measurement plan."""

    version: Literal[1] = 1
    name: Id
    provinces: list[Province] = Field(min_length=1)
    assumptions: list[str] = []
    carriers: list[Carrier] = Field(min_length=1)
    cities: list[City] = []
    sites: list[Site] = []
    probes: list[Probe] = []
    targets: list[Target] = []
    specs: list[MeasurementSpec] = []
    baselines: list[Baseline] = []
    policy_targets: list[PolicyTarget] = []
