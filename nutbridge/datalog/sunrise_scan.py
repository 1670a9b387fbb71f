"""The data log's last days for the sunrise estimate: each day's PV start (sunrise.pv_start), read through the
reader's day cache, at start and again when the day changes; never on a poll's path (a thread does the reading).

A scan reads the day files of the last ``days`` days and today's, each through a DayCache of its own that is
dropped after it: the files are parsed once a day, one at a time (a day at a 1 s poll is some 30 MB parsed), and
nothing of them stays in memory between scans.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from nutbridge.datalog.format import Column, day_name
from nutbridge.datalog.reader import DayCache
from nutbridge.sunrise import MIN_DAYS, History, estimate, pv_start, standard_offset

log = logging.getLogger(__name__)

CHECK_EVERY = 60.0  # s: how often the refresher looks whether the day has changed (a date compared, no I/O)


def day_rows(cache: DayCache, name: str) -> tuple[list[float | None], list[float | None]] | None:
    """A day file's times (Unix seconds) and PV powers (W), or None when it has no rows or no PV column."""
    rows = cache.rows(name)
    positions = None if rows is None else cache.positions(rows, [Column.PV_POWER_L])
    if rows is None or positions is None or len(rows) < 2:
        return None
    return cache.numbers(name, rows, 0), cache.numbers(name, rows, positions[0])


def scan(folder: Path, days: int, now: float, offset: int) -> History:
    """What the day files of the ``days`` days before ``now``'s local date, and of that date, say of sunrise."""
    today = dt.date.fromtimestamp(now)
    present = set(DayCache(folder).names())  # the files alone: today's held rows do not matter for a dawn
    starts: list[float] = []
    peaks: list[float] = []
    today_start = None
    for back in range(days, -1, -1):
        name = day_name(today - dt.timedelta(days=back))
        found = day_rows(DayCache(folder), name) if name in present else None  # one file parsed at a time
        if found is None:
            continue
        times, powers = found
        start = pv_start(times, powers)
        if back == 0:
            today_start = start
            continue
        peaks.append(max((p for p in powers if p is not None), default=0.0))
        if start is not None:
            starts.append(start)
    peak = statistics.median(peaks) if peaks else 0.0
    return History(estimate=estimate(starts, offset), scanned=today, today_start=today_start, peak=peak)


def described(history: History, days: int) -> str:
    """The scan's result in words, for the log."""
    e = history.estimate
    if e is None:
        return f"sunrise unknown: fewer than {MIN_DAYS} of the last {days} days in the data log show PV starting"
    hours, rest = divmod(int(e.time_of_day), 3600)
    return f"sunrise at {hours:02d}:{rest // 60:02d} standard time, the median of {e.days} days in the data log"


async def keep_fresh(
    history: History,
    folder: Path,
    days: int,
    *,
    clock: Callable[[], float] = time.time,
    check_every: float = CHECK_EVERY,
) -> None:
    """Scan at once, then again whenever the local date is not the scanned one; ``history`` takes each result."""
    said = None
    while True:
        now = clock()
        if history.scanned != dt.date.fromtimestamp(now):
            try:
                fresh = await asyncio.to_thread(scan, folder, days, now, standard_offset())
            except OSError as exc:  # the reader answers None for what it cannot read; this is the folder itself
                log.warning("sunrise: cannot read the data log in %s: %s", folder, exc)
                fresh = History(scanned=dt.date.fromtimestamp(now))
            history.take(fresh)
            words = described(fresh, days)
            if words != said:
                log.info("%s", words)
                said = words
        await asyncio.sleep(check_every)
