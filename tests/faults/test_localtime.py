"""Local days and hours over UTC minutes, and which tier can serve a local selection."""

from __future__ import annotations

from datetime import date

import numpy as np

from analyzer.localtime import (
    day_label,
    day_number,
    day_start_ns,
    local_grain,
    local_minutes,
    serving_tier,
    why_not,
)

H = 3600 * 10**9
DAY = 24 * H


def _span(tz: str, first: date, n: int) -> tuple[int, int]:
    d = day_number(first)
    return day_start_ns(d, tz), day_start_ns(d + n, tz)


def test_shanghai_days_start_at_16_utc() -> None:
    start, end = _span("Asia/Shanghai", date(2026, 4, 1), 1)
    assert start % DAY == 16 * H
    assert end - start == DAY
    minutes = np.array([start // 60_000_000_000], dtype=np.int64)
    assert day_label(int(local_minutes(minutes, "Asia/Shanghai")[0] // 1440)) == "2026-04-01"


def test_a_dst_day_has_23_hours() -> None:
    start, end = _span("Europe/Berlin", date(2026, 3, 29), 1)
    assert end - start == 23 * H


def test_which_tier_serves() -> None:
    shanghai = [_span("Asia/Shanghai", date(2026, 4, 1), 30)]
    utc = [_span("UTC", date(2026, 4, 1), 30)]
    kolkata = [_span("Asia/Kolkata", date(2026, 4, 1), 30)]
    assert why_not("hour", shanghai, "Asia/Shanghai", 60) is None
    assert "UTC+8" in str(why_not("day", shanghai, "Asia/Shanghai", 1440))
    assert why_not("day", utc, "UTC", 1440) is None
    assert "UTC+5.5" in str(why_not("hour", kolkata, "Asia/Kolkata", 60))
    assert serving_tier("auto", kolkata, "Asia/Kolkata", 60) == ("minute", None)
    assert serving_tier("auto", shanghai, "Asia/Shanghai", 1440) == ("hour", None)
    tier, note = serving_tier("day", shanghai, "Asia/Shanghai", 1440)
    assert tier == "hour"
    assert note is not None
    assert note.startswith("day rollups cannot serve")
    assert local_grain(60, *kolkata[0], "Asia/Kolkata") == 30
    assert local_grain(60, *shanghai[0], "Asia/Shanghai") == 60
    off_minute = [(shanghai[0][0] + 60_000_000_000, shanghai[0][1])]
    assert "boundaries" in str(why_not("hour", off_minute, None, None))


def test_a_fixed_offset_only_where_the_zone_keeps_one() -> None:
    """The one-offset shortcut is derived from the zone and checked hour by hour: Shanghai
    keeps +8 h all year, Berlin changes at the end of March, and minutes across the switch
    are read hour by hour."""
    from analyzer.localtime import fixed_offset, offsets

    year = (day_start_ns(day_number(date(2026, 1, 1)), "UTC") // H,
            day_start_ns(day_number(date(2027, 1, 1)), "UTC") // H - 1)
    assert fixed_offset("Asia/Shanghai", *year) == 480
    assert fixed_offset("Europe/Berlin", *year) is None
    winter = day_start_ns(day_number(date(2026, 1, 10)), "UTC") // H
    assert fixed_offset("Europe/Berlin", winter, winter + 24) == 60
    march = day_start_ns(day_number(date(2026, 3, 29)), "UTC") // 60_000_000_000
    minutes = np.arange(march, march + 24 * 60, 60, dtype=np.int64)
    assert offsets(minutes, "Europe/Berlin").tolist() == [60] * 1 + [120] * 23  # 01:00 UTC
    assert offsets(minutes, "Asia/Shanghai").tolist() == [480] * 24
    assert offsets(minutes[:0], "Europe/Berlin").tolist() == []
