"""The sunrise learnt from real day files: rows written as the data log writes them (format.encode) in
Europe/Berlin, across its DST change (2025-03-30), read back through the reader's day cache."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nutbridge.datalog.format import HEADER, csv_line, day_file, encode
from nutbridge.datalog.sunrise_scan import keep_fresh, scan
from nutbridge.model import Reading
from nutbridge.sunrise import History
from tests.helpers.zone import local_zone

BERLIN = ZoneInfo("Europe/Berlin")
CET = 3600
TODAY = dt.date(2025, 4, 2)


@pytest.fixture
def berlin() -> Iterator[None]:
    """Europe/Berlin as this process's zone: the data log's cells are naive local times."""
    with local_zone("Europe/Berlin"):
        yield


def at(day: dt.date, hh: int, mm: int) -> float:
    return dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=BERLIN).timestamp()


def write_day(
    folder: Path, day: dt.date, start: tuple[int, int] | None, *, flash: bool = False, until: int = 24
) -> None:
    """A day file with a row a minute up to ``until`` o'clock: no PV before ``start`` (wall clock), 40 W after
    it until 18:00; ``flash``: a torch on the panel at 02:00 for three minutes."""
    lines = [csv_line(HEADER)]
    for minute in range(until * 60):
        hh, mm = divmod(minute, 60)
        sun = start is not None and (hh, mm) >= start and hh < 18
        pv = 150.0 if flash and hh == 2 and mm < 3 else 40.0 if sun else 0.0
        r = Reading(time=at(day, hh, mm), battery_charge=70.0, battery_voltage=12.6, battery_current=-1.2,
                    pv_power=pv, load_power=15.0)  # fmt: skip
        lines.append(csv_line(encode(r)))
    day_file(folder, day).write_text("".join(lines))


# The wall-clock starts of tests/test_sunrise.py: their median in CET is 06:39, that is 07:39 CEST on TODAY.
STARTS = [(26, (6, 41)), (27, (6, 43)), (28, (6, 40)), (29, (6, 38)), (30, (7, 36)), (31, (7, 39))]


def test_a_week_of_day_files_gives_the_median_sunrise(tmp_path: Path, berlin: None) -> None:
    for day, start in STARTS:
        write_day(tmp_path, dt.date(2025, 3, day), start, flash=day == 28)
    write_day(tmp_path, dt.date(2025, 4, 1), (7, 33))
    write_day(tmp_path, dt.date(2025, 3, 20), (7, 0))  # 13 days back: outside the 7 days asked for
    history = scan(tmp_path, 7, at(TODAY, 3, 0), CET)
    assert history.estimate is not None
    assert history.estimate.days == 7
    assert history.estimate.next(at(TODAY, 3, 0), started_today=False) == at(TODAY, 7, 39)
    assert history.today_start is None  # today's file does not exist yet
    assert history.peak == 40.0  # the median of the days' peaks: the flash's day peaks at 150 W, the others 40


def test_todays_file_tells_whether_pv_started_today(tmp_path: Path, berlin: None) -> None:
    for day, start in STARTS:
        write_day(tmp_path, dt.date(2025, 3, day), start)
    write_day(tmp_path, TODAY, (7, 41), until=9)  # up to 09:00 today
    history = scan(tmp_path, 7, at(TODAY, 9, 0), CET)
    assert history.today_start == at(TODAY, 7, 41)


def test_too_few_days_in_the_log_is_unknown(tmp_path: Path, berlin: None) -> None:
    write_day(tmp_path, dt.date(2025, 4, 1), (7, 33))
    write_day(tmp_path, dt.date(2025, 3, 31), (7, 39))
    write_day(tmp_path, dt.date(2025, 3, 30), None)  # a dark day: no start
    assert scan(tmp_path, 7, at(TODAY, 3, 0), CET).estimate is None
    assert scan(tmp_path / "missing", 7, at(TODAY, 3, 0), CET).estimate is None


class Watched(History):
    """A History that says when it takes a scan."""

    def __init__(self) -> None:
        super().__init__()
        self.scans: asyncio.Queue[dt.date | None] = asyncio.Queue()

    def take(self, fresh: History) -> None:
        super().take(fresh)
        self.scans.put_nowait(fresh.scanned)


async def test_the_refresher_scans_at_start_and_again_on_a_new_day(tmp_path: Path, berlin: None) -> None:
    for day, start in STARTS:
        write_day(tmp_path, dt.date(2025, 3, day), start)
    now = [at(dt.date(2025, 3, 28), 23, 59)]  # the days before: the 26th and 27th, fewer than the 3 needed
    history = Watched()
    task = asyncio.create_task(keep_fresh(history, tmp_path, 7, clock=lambda: now[0], check_every=0.01))
    try:
        async with asyncio.timeout(10):  # a guard against hanging, not a timing assertion
            assert await history.scans.get() == dt.date(2025, 3, 28)
            assert history.estimate is None
            assert history.today_start == at(dt.date(2025, 3, 28), 6, 40)
            now[0] = at(TODAY, 0, 1)  # midnight passed: the 26th to the 31st
            assert await history.scans.get() == TODAY
            assert history.scans.empty()  # one scan a day, however often it looks
            assert history.estimate is not None
            assert history.estimate.days == 6
    finally:
        task.cancel()
