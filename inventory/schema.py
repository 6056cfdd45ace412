"""Inventory schema: carriers, cities, sites, probes, targets, measurement specs, baselines and
policy targets. Pydantic v2 models; cross-references are checked in :mod:`inventory.validate`.

Nothing here knows about Hunan or Shandong: a policy target is data (statistic, scope,
comparison, aggregation window) that the analyzer evaluates as written.
"""

from __future__ import annotations

import enum
import ipaddress
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ixmeter.core.rules import SMALLEST_PACKET, Method

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


def _check_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name, e.g. Asia/Shanghai)"
                         ) from None
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
    methods: list[Method] = [Method.ICMP, Method.STAMP, Method.TRACEROUTE]
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
    method: Method
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

    @field_validator("size")
    @classmethod
    def _size(cls, v: int, info: ValidationInfo) -> int:
        """A size the method can send: the probe's smallest packet of that method."""
        method = info.data.get("method")
        if not isinstance(method, Method):
            return v  # the method itself is refused
        least, why = SMALLEST_PACKET[method]
        if v < least:
            raise ValueError(f"size {v} is below the smallest {method} packet a probe sends, "
                             f"{least} octets ({why})")
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
    """The source a policy target, fault rule or declared baseline comes from, cited by its
    real title; what the document itself does not give (issuer, year) is marked assumed."""

    title: Names
    issuer: str
    year: int | None = Field(default=None, ge=1990, le=2100)
    reference: str | None = None
    assumption: str | None = None


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
    """relative: current/baseline <= 1 - reduction; absolute: statistic < below_ms (or
    below_ratio); reference: statistic(scope)/statistic(reference scope) <= at_most_ratio.
    :attr:`threshold` is the one number each kind is judged against."""

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

    @property
    def threshold(self) -> float:
        """The threshold of the comparison, the one definition the analyzer, reports and
        dashboard use: theta = 1 - reduction (relative), at_most_ratio (reference), below_ms
        or below_ratio (absolute). In :attr:`threshold_unit`."""
        if self.kind == "relative":
            return 1 - (self.reduction or 0.0)
        if self.kind == "reference":
            return self.at_most_ratio or 0.0
        return self.below_ms if self.below_ms is not None else self.below_ratio or 0.0

    @property
    def threshold_unit(self) -> Literal["ms", "ratio"]:
        """``ms`` for an absolute delay limit (below_ms), else ``ratio``."""
        return "ms" if self.kind == "absolute" and self.below_ms is not None else "ratio"


class Aggregation(_Model):
    """Over which time the statistic is taken: the whole window, or its busy hours (local
    hours in ``timezone``). Day-by-day rules are fault rules (:class:`FaultRule`). An
    inventory that does not write ``timezone`` gets its province's (:class:`Inventory`)."""

    window: Literal["whole", "busy_hours"] = "whole"
    busy_hours: list[Annotated[int, Field(ge=0, le=23)]] = []
    timezone: str

    _tz = field_validator("timezone")(lambda cls, v: _check_timezone(v))


class PolicyTarget(_Model):
    id: Id
    name: Names
    statistic: str
    scope: PathScope
    comparison: Comparison
    aggregation: Aggregation  # the inventory fills in its province's zone when not written
    per: Literal["scope", "carrier_pair", "city_pair", "path"] = "carrier_pair"
    method: Method | None = None
    baseline: Id | None = None
    document: Document

    @field_validator("statistic")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in KNOWN_STATISTICS:
            raise ValueError(f"unknown statistic {v!r}; known: {', '.join(KNOWN_STATISTICS)}")
        return v


class Segment(_Model):
    """A measured stretch of an interconnection: the directed probe pairs (``paths``) that
    measure it, its ``role`` (a label such as Annex 5's PA-PE of the regulator's measures) and
    the interconnection point (a site) it belongs to. A fault rule selects segments by role;
    its reference is the reference-role path at the same interconnection point with the same
    destination end (test point and network)."""

    id: Id
    role: Id
    interconnect: Id
    paths: PathScope
    name: Names | None = None
    assumption: str | None = None


class Threshold(_Model):
    """A named value a fault rule compares with, with where it comes from. ``value`` None:
    not public (e.g. "to be filled from Annex 4"); a rule that needs it is NOT EVALUABLE until
    it is filled in. ``percent`` is read as value / 100 (loss ratios, margins)."""

    id: Id
    name: Names
    value: float | None = Field(ge=0)
    unit: Literal["ms", "percent"]
    source: str = Field(min_length=1)


RULE_STATISTICS = ("rtt_mean", "rtt_median", "rtt_p95", "rtt_p99", "rtt_min", "pdv_p99",
                   "loss_ratio")


class Condition(_Model):
    """A composite condition: ``all_of`` or ``any_of`` a list of conditions, or one test of a
    ``statistic`` against a threshold (``above`` it, ``at_least`` it) or against the reference
    (``above_reference_by``: more than reference x (1 + margin)). Exactly one of the four."""

    all_of: list[Condition] | None = None
    any_of: list[Condition] | None = None
    statistic: str | None = None
    above: Id | None = None
    at_least: Id | None = None
    above_reference_by: Id | None = None

    @model_validator(mode="after")
    def _one(self) -> Condition:
        tests = [k for k in ("above", "at_least", "above_reference_by") if getattr(self, k)]
        kinds = [k for k in ("all_of", "any_of") if getattr(self, k) is not None]
        if self.statistic is None and tests:
            raise ValueError(f"'{tests[0]}' needs a 'statistic'")
        if self.statistic is not None:
            kinds.append("statistic")
            if len(tests) != 1:
                raise ValueError("a test needs exactly one of 'above', 'at_least', "
                                 "'above_reference_by'")
            if self.statistic not in RULE_STATISTICS:
                raise ValueError(f"statistic {self.statistic!r} cannot be used in a fault rule; "
                                 f"known: {', '.join(RULE_STATISTICS)}")
        if len(kinds) != 1:
            raise ValueError("a condition is exactly one of 'all_of', 'any_of' or a "
                             "'statistic' test")
        for k in ("all_of", "any_of"):
            if getattr(self, k) == []:
                raise ValueError(f"'{k}' needs at least one condition")
        return self


class RuleCalendar(_Model):
    """When a fault rule looks: local calendar days in ``timezone``, the local ``hours`` of
    each day (empty: all day), one test per ``test_minutes`` of local time that holds at least
    ``min_samples`` samples, at least ``min_tests`` tests for a day to be judged, and a fault
    once ``consecutive_days`` judged days in a row meet the condition. An inventory that does
    not write ``timezone`` gets its first province's (:class:`Inventory`)."""

    timezone: str
    hours: list[Annotated[int, Field(ge=0, le=23)]] = []
    test_minutes: int = Field(default=60, ge=1, le=1440)
    min_samples: int = Field(default=1, ge=1)
    min_tests: int = Field(default=1, ge=1)
    consecutive_days: int = Field(default=1, ge=1, le=366)
    assumption: str | None = None

    _tz = field_validator("timezone")(lambda cls, v: _check_timezone(v))

    @model_validator(mode="after")
    def _tiles(self) -> RuleCalendar:
        if 1440 % self.test_minutes:
            raise ValueError(f"test_minutes {self.test_minutes} does not divide a day")
        if self.hours and 60 % self.test_minutes:
            raise ValueError(f"test_minutes {self.test_minutes} does not divide an hour, so "
                             "tests would straddle the chosen hours")
        if len(set(self.hours)) != len(self.hours):
            raise ValueError("an hour is listed twice")
        return self


class Article(_Model):
    """Where in the document a rule is written, e.g. 第五条（一）1 / Article 5 (1) item 1."""

    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class FaultRule(_Model):
    """A rule of a regulator's fault register, as written: the segments it judges (by role),
    the calendar, the condition, the reference roles (for ``above_reference_by`` tests)."""

    id: Id
    name: Names
    fault_class: Id
    article: Article
    document: Document
    method: Method = Method.ICMP
    segments: list[Id] = Field(min_length=1)
    reference: list[Id] = []
    calendar: RuleCalendar  # the inventory fills in its province's zone when not written
    condition: Condition


class ClockDomain(_Model):
    """Probes whose timestamps come from one clock: hosts that read the same kernel clock, or
    probes disciplined by one PTP grandmaster (IEEE 1588). A one-way delay between two probes
    of one domain is the difference of two readings of that clock, so its error is the
    domain's ``relative_error_ms`` (RFC 7679 §3.7.1: the *relative* offset of the two clocks
    is what enters a one-way delay), not the sum of each end's absolute error against UTC; the
    analyzer uses it in place of the results' own bound and S bits (docs/methodology.md §5).
    ``basis`` says why the probes share a clock and where the bound comes from: it is what an
    auditor checks."""

    id: Id
    probes: list[Id] = Field(min_length=2)
    relative_error_ms: float = Field(gt=0, le=1000)
    basis: str = Field(min_length=1)


Lon = Annotated[float, Field(ge=-180, le=180)]
Lat = Annotated[float, Field(ge=-90, le=90)]


class Province(_Model):
    """A province and its local time (an IANA zone name): the zone its policy targets' busy
    hours and its fault rules' days are counted in unless they name their own.

    ``outline`` (optional) is the province's boundary for the dashboard's map: a ring of
    ``[lon, lat]`` vertices in WGS-84 degrees, at least three, in order; the ring closes
    itself (repeating the first vertex at the end is allowed, not needed). Where it comes from
    and how exact it is belongs in a comment next to it: it is drawn, never used to measure."""

    id: Id
    name: Names
    timezone: str
    outline: list[tuple[Lon, Lat]] | None = Field(default=None, min_length=3)

    _tz = field_validator("timezone")(lambda cls, v: _check_timezone(v))


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
    segments: list[Segment] = []
    thresholds: list[Threshold] = []
    fault_rules: list[FaultRule] = []
    clock_domains: list[ClockDomain] = []
    synthetic: str | None = None  # set when the data this inventory describes is synthetic

    @model_validator(mode="before")
    @classmethod
    def _local_zones(cls, data: Any) -> Any:
        """Policy is data: a policy target's aggregation or a fault rule's calendar that does
        not name its time zone gets its province's (the scope's ``within_province``, else the
        inventory's first province: :attr:`timezone`)."""
        if not isinstance(data, dict):
            return data
        zones = {p.get("id"): p.get("timezone") for p in data.get("provinces") or []
                 if isinstance(p, dict)}
        home = next(iter(zones.values()), None)
        if not isinstance(home, str):
            return data
        out = dict(data)
        out["policy_targets"] = [
            _with_zone(t, "aggregation", zones.get(_scope_province(t), home))
            for t in data.get("policy_targets") or []]
        out["fault_rules"] = [_with_zone(r, "calendar", home)
                              for r in data.get("fault_rules") or []]
        return out

    @property
    def timezone(self) -> str:
        """The inventory's local time: its first province's zone. The dashboard shows times
        and buckets days in it; a target's busy hours use the target's own zone."""
        return self.provinces[0].timezone


def _scope_province(target: Any) -> Any:
    scope = target.get("scope") if isinstance(target, dict) else None
    return scope.get("within_province") if isinstance(scope, dict) else None


def _with_zone(item: Any, field: str, zone: Any) -> Any:
    """``item`` (a raw policy target or fault rule) with ``zone`` in ``item[field]`` when it
    names none."""
    if not isinstance(item, dict) or not isinstance(zone, str):
        return item
    part = item.get(field, {})
    if not isinstance(part, dict) or "timezone" in part:
        return item
    return {**item, field: {**part, "timezone": zone}}
