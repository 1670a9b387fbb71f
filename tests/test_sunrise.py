"""The sunrise estimate, pure: a day's PV start from its rows, and the next sunrise from the last days' starts.
Times are built in Europe/Berlin with zoneinfo (its DST starts on 2025-03-30 at 02:00, CET +1 → CEST +2); the
estimate takes the zone's standard offset as an argument, so no test depends on this process's zone or clock."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from nutbridge.sunrise import LATE, estimate, pv_start

BERLIN = ZoneInfo("Europe/Berlin")
CET = 3600  # Berlin's standard offset, seconds east of UTC


def at(day: dt.date, hh: int, mm: int) -> float:
    """Unix time of ``hh:mm`` on the wall clock in Berlin on ``day``."""
    return dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=BERLIN).timestamp()


def day_rows(
    day: dt.date, start: tuple[int, int] | None, **extra: float
) -> tuple[list[float | None], list[float | None]]:
    """A day every minute: no PV until ``start`` (wall clock), then 40 W until 18:00; ``extra``: "HH:MM" → W."""
    times: list[float | None] = []
    powers: list[float | None] = []
    for minute in range(24 * 60):
        hh, mm = divmod(minute, 60)
        t = at(day, hh, mm)
        sun = start is not None and (hh, mm) >= start and hh < 18
        times.append(t)
        powers.append(extra.get(f"h{hh:02d}{mm:02d}", 40.0 if sun else 0.0))
    return times, powers


def test_the_start_is_the_first_row_of_a_sustained_run() -> None:
    day = dt.date(2025, 3, 26)
    assert pv_start(*day_rows(day, (6, 41))) == at(day, 6, 41)


def test_a_flash_at_night_and_a_street_light_are_not_the_start() -> None:
    day = dt.date(2025, 3, 26)
    # 02:00-02:02: a torch on the panel, 150 W for three rows (3 minutes < the 10 minutes a start must last);
    # from 19:00 a street light gives 0.6 W (under the 1 W floor and 2 % of the day's 150 W peak)
    flash = {"h0200": 150.0, "h0201": 150.0, "h0202": 150.0}
    light = {f"h{h:02d}{m:02d}": 0.6 for h in range(19, 24) for m in range(60)}
    assert pv_start(*day_rows(day, (6, 43), **flash, **light)) == at(day, 6, 43)


def test_a_log_that_starts_in_full_sun_has_no_start() -> None:
    day = dt.date(2025, 3, 26)
    times, powers = day_rows(day, (6, 41))
    morning = 10 * 60  # the daemon came up at 10:00: no dark row before the sun
    assert pv_start(times[morning:], powers[morning:]) is None


def test_a_dark_day_has_no_start() -> None:
    assert pv_start(*day_rows(dt.date(2025, 3, 26), None)) is None


# PV starts on the wall clock around Berlin's DST change (2025-03-30): the last four in CEST, an hour later on the
# clock while the sun keeps its pace. In CET (standard time) they are 06:41, 06:43, 06:40, 06:38, 06:36, 06:39,
# 06:33; sorted 06:33 06:36 06:38 06:39 06:40 06:41 06:43: the median is 06:39 CET = 07:39 CEST on 2025-04-02.
# (The wall clock's median, 06:43, would be an hour early in CEST.)
STARTS = [
    (dt.date(2025, 3, 26), 6, 41),
    (dt.date(2025, 3, 27), 6, 43),
    (dt.date(2025, 3, 28), 6, 40),
    (dt.date(2025, 3, 29), 6, 38),
    (dt.date(2025, 3, 30), 7, 36),
    (dt.date(2025, 3, 31), 7, 39),
    (dt.date(2025, 4, 1), 7, 33),
]


def test_the_median_in_standard_time_holds_across_a_dst_change() -> None:
    found = estimate([at(day, hh, mm) for day, hh, mm in STARTS], CET)
    assert found is not None
    assert found.days == 7
    assert found.time_of_day == 6 * 3600 + 39 * 60
    today = dt.date(2025, 4, 2)
    assert found.next(at(today, 3, 0), started_today=False) == at(today, 7, 39)


def test_once_pv_started_today_the_next_sunrise_is_tomorrows() -> None:
    found = estimate([at(day, hh, mm) for day, hh, mm in STARTS], CET)
    assert found is not None
    today, tomorrow = dt.date(2025, 4, 2), dt.date(2025, 4, 3)
    assert found.next(at(today, 7, 45), started_today=True) == at(tomorrow, 7, 39)
    assert found.next(at(today, 21, 0), started_today=False) == at(tomorrow, 7, 39)


def test_a_late_sun_is_due_until_late_then_tomorrows() -> None:
    found = estimate([at(day, hh, mm) for day, hh, mm in STARTS], CET)
    assert found is not None
    today, tomorrow = dt.date(2025, 4, 2), dt.date(2025, 4, 3)
    sunrise = at(today, 7, 39)
    assert found.next(sunrise + 600, started_today=False) == sunrise  # 10 minutes late: still due
    assert found.next(sunrise + LATE, started_today=False) == at(tomorrow, 7, 39)


def test_the_night_of_the_change_gets_the_mornings_clock() -> None:
    # Four days at 06:50 CET; in the night of 2025-03-30, before 02:00, the next sunrise is 07:50 CEST that day
    days = [dt.date(2025, 3, d) for d in (26, 27, 28, 29)]
    found = estimate([at(day, 6, 50) for day in days], CET)
    assert found is not None
    change = dt.date(2025, 3, 30)
    assert found.next(at(change, 1, 30), started_today=False) == at(change, 7, 50)


def test_too_few_days_is_unknown() -> None:
    assert estimate([at(dt.date(2025, 3, 26), 6, 41), at(dt.date(2025, 3, 27), 6, 43)], CET) is None
    assert estimate([], CET) is None
