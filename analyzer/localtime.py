"""Local calendar over UTC minutes, and which store tier can serve a selection exactly.

A rule's days and hours are local to its time zone (IANA name, e.g. Asia/Shanghai for the
regulator's busy hours); rollups are keyed by UTC minute, and the store's hour and day tiers
are UTC units (a tier row's ``minute`` is its unit's first minute). A tier can serve a
selection only when every unit it returns lies wholly inside or wholly outside each selected
local unit: the window starts and ends on the tier's UTC boundaries, the selection's local
unit (a test of N minutes, a busy hour, a local day) is a whole number of tier units, and the
zone's UTC offset is a whole number of tier units throughout the window. A zone at UTC+8 all
year (Asia/Shanghai) has an hour tier that tiles its hours and days and a UTC day tier that
tiles neither. Read from a tier that serves it, a selection holds the same samples as from
minute rollups.

The zone is always data (a province's, a policy target's or a fault rule's ``timezone`` in the
inventory); nothing here names one. A zone with one UTC offset over the minutes asked about is
read with that offset (:func:`fixed_offset`, checked hour by hour), else hour by hour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
NS_MIN = 60_000_000_000
TIER_MINUTES = {"minute": 1, "hour": 60, "day": 1440}  # the store's UTC rollup tiers
FINER = {"day": "hour", "hour": "minute"}


@lru_cache(maxsize=65536)
def offset_at_hour(hour: int, tz: str) -> int:
    """UTC offset of ``tz`` (minutes) during UTC hour ``hour`` (hours since the epoch)."""
    off = datetime.fromtimestamp(hour * 3600, tz=UTC).astimezone(ZoneInfo(tz)).utcoffset()
    return int(off.total_seconds() // 60) if off else 0


@lru_cache(maxsize=1024)
def fixed_offset(tz: str, first_hour: int, last_hour: int) -> int | None:
    """The UTC offset (minutes) ``tz`` has throughout UTC hours first_hour..last_hour, or None
    when it changes in between (a daylight-saving switch)."""
    seen = {offset_at_hour(h, tz) for h in range(first_hour, last_hour + 1)}
    return seen.pop() if len(seen) == 1 else None


def offsets(minutes: IntArray, tz: str) -> IntArray:
    """The offset (minutes) of ``tz`` from UTC at each UTC minute, looked up once per UTC hour
    (a zone whose offset changes inside a UTC hour is read with the hour's starting offset);
    one number added when the zone keeps one offset over the minutes (:func:`fixed_offset`)."""
    if not len(minutes):
        return np.zeros(minutes.shape, dtype=np.int64)
    fixed = fixed_offset(tz, int(minutes.min()) // 60, int(minutes.max()) // 60)
    if fixed is not None:
        return np.full(minutes.shape, fixed, dtype=np.int64)
    hours, at = np.unique(minutes // 60, return_inverse=True)
    table = np.array([offset_at_hour(h, tz) for h in hours.tolist()], dtype=np.int64)
    out: IntArray = table[at].reshape(minutes.shape)
    return out


def local_minutes(minutes: IntArray, tz: str) -> IntArray:
    """Local minutes since the local epoch of each UTC minute."""
    out: IntArray = minutes + offsets(minutes, tz)
    return out


def window_offsets(start_ns: int, end_ns: int, tz: str) -> set[int]:
    """Every UTC offset (minutes) ``tz`` has in [start_ns, end_ns)."""
    first, last = start_ns // (3600 * 10**9), (end_ns - 1) // (3600 * 10**9)
    return {offset_at_hour(h, tz) for h in range(first, last + 1)}


def local_datetime(t_ns: int, tz: str) -> datetime:
    """The local wall-clock time in ``tz`` of UTC ns ``t_ns``, to the second below (integer
    seconds: never rounded up into the next day)."""
    return datetime.fromtimestamp(t_ns // 1_000_000_000, ZoneInfo(tz))


def local_label(t_ns: int, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``t_ns`` as local wall-clock time in ``tz``."""
    return local_datetime(t_ns, tz).strftime(fmt)


def local_day_start(t_ns: int, tz: str) -> int:
    """UTC ns of the local midnight in ``tz`` that starts the day holding ``t_ns``."""
    return day_start_ns(day_number(local_datetime(t_ns, tz).date()), tz)


def local_hour_of_day(t_ns: int, tz: str) -> int:
    return local_datetime(t_ns, tz).hour


def local_dates(start: str, end: str, tz: str) -> tuple[int, int]:
    """[start_ns, end_ns) of two ISO dates (``YYYY-MM-DD``) read in ``tz``, ``end``
    inclusive (the whole day); ValueError for a malformed date."""
    first, last = date.fromisoformat(start[:10]), date.fromisoformat(end[:10])
    return day_start_ns(day_number(first), tz), day_start_ns(day_number(last) + 1, tz)


def day_label(day: int) -> str:
    """A local day number (days since 1970-01-01 in local time) as ``YYYY-MM-DD``."""
    return (date(1970, 1, 1) + timedelta(days=day)).isoformat()


def day_number(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def day_start_ns(day: int, tz: str) -> int:
    """UTC ns of local midnight starting local day ``day`` in ``tz``."""
    d = date(1970, 1, 1) + timedelta(days=day)
    local = datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(tz))
    return int(local.timestamp()) * 10**9


def local_grain(unit_minutes: int, start_ns: int, end_ns: int, tz: str) -> int:
    """The largest number of minutes that divides ``unit_minutes`` and every UTC offset the
    zone has in the window: units of this size, laid on UTC, tile the local units."""
    return math.gcd(unit_minutes, *window_offsets(start_ns, end_ns, tz))


def why_not(tier: str, windows: Iterable[tuple[int, int]], tz: str | None,
            local_unit: int | None) -> str | None:
    """Why ``tier`` cannot serve a selection of local units of ``local_unit`` minutes in
    ``tz`` over ``windows`` (None: no local selection, only the window ends matter), or None
    when it can."""
    size = TIER_MINUTES[tier]
    if size == 1:
        return None
    spans = list(windows)
    if local_unit is not None and tz is not None:
        if local_unit % size:
            return f"a local unit of {local_unit} min is not a whole number of {tier}s"
        for start, end in spans:
            odd = sorted(o for o in window_offsets(start, end, tz) if o % size)
            if odd:
                return (f"{tz} is UTC{odd[0] / 60:+g} h, so its local units do not start on "
                        f"UTC {tier} boundaries")
    for start, end in spans:
        if start % (size * NS_MIN) or end % (size * NS_MIN):
            return f"the window does not start and end on UTC {tier} boundaries"
    return None


def serving_tier(requested: str, windows: Iterable[tuple[int, int]], tz: str | None,
                 local_unit: int | None) -> tuple[str, str | None]:
    """The tier to read: the requested one (``auto``: the day tier) if it can serve the
    selection, else the next finer one that can; and, when it is not the requested one, why
    (``auto`` gives no reason)."""
    spans = list(windows)
    tier = "day" if requested == "auto" else requested
    reason = None
    while tier != "minute":
        why = why_not(tier, spans, tz, local_unit)
        if why is None:
            break
        reason = reason or f"{tier} rollups cannot serve it: {why}"
        tier = FINER[tier]
    return tier, (None if requested in ("auto", tier) else reason)
