"""When the sun comes back: the first time PV produced on each of the last days, and the next sunrise estimated
from those days. Pure, no I/O: ``datalog/sunrise_scan.py`` feeds it the data log's days, the monitor's
``outlook.Forecaster`` asks it per poll (arithmetic only).

A day's PV start is the first row of the first run of rows that produce (PV power above the larger of
``PV_FLOOR_W`` and ``PV_SHARE`` of the day's peak) for at least ``SUSTAIN`` seconds, right after a row that did
not produce (within ``MAX_GAP``): a street light stays under the threshold, a torch or a flash does not last, and
a day whose log starts in full sun (the daemon was down at dawn) has no start, rather than a wrong one.

Times of day are taken in one fixed offset from UTC, the zone's standard time (``time.timezone``): sunrise moves
a few minutes a week in it, where on the wall clock it jumps an hour at each DST change. The next sunrise is the
median of those times of day, on today's date while today's PV has not started yet (and for ``LATE`` after the
estimate: a cloudy dawn is late, not a day without sun), else on tomorrow's. Fewer than ``MIN_DAYS`` days with a
start: unknown, never guessed.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

DAY = 86400
PV_FLOOR_W = 1.0  # W: below this PV does not produce, whatever the day's peak (a street light on the panel)
PV_SHARE = 0.02  # and below this share of the day's peak
SUSTAIN = 600.0  # s: a run of producing rows must last this long to be the day's start
MAX_GAP = 900.0  # s: the non-producing row before a start must be this close to it (the log was running)
MIN_DAYS = 3  # days with a PV start needed for an estimate
LATE = 3 * 3600.0  # s after today's estimate during which a sun not yet seen is late, still due today


def standard_offset() -> int:
    """Seconds east of UTC of the local zone's standard time (without DST)."""
    return -time.timezone


def threshold(peak: float) -> float:
    """PV power at or below which PV does not produce, on a day whose peak is ``peak`` W."""
    return max(PV_FLOOR_W, PV_SHARE * peak)


def pv_start(times: Sequence[float | None], powers: Sequence[float | None]) -> float | None:
    """The Unix time of the day's PV start in rows ``times`` (Unix seconds, in order) and ``powers`` (W), or None."""
    peak = max((p for p in powers if p is not None), default=0.0)
    above = threshold(peak)
    dark: float | None = None  # the last non-producing row's time
    run: float | None = None  # the first row of the producing run under way
    for t, p in zip(times, powers, strict=True):
        if t is None:
            continue
        if p is None or p <= above:
            dark, run = t, None
            continue
        if run is None:
            if dark is None or t - dark > MAX_GAP:
                continue  # no dark row just before: the log was not running when this run started
            run = t
        if t - run >= SUSTAIN:
            return run
    return None


def time_of_day(t: float, offset: int) -> float:
    """Seconds since midnight of Unix time ``t`` in the fixed ``offset`` (seconds east of UTC)."""
    return (t + offset) % DAY


def day_number(t: float, offset: int) -> int:
    """The day of Unix time ``t`` in the fixed ``offset``, counted from 1970-01-01."""
    return int((t + offset) // DAY)


@dataclass(frozen=True, slots=True)
class Estimate:
    """The sunrise's time of day (seconds since midnight in ``offset``) from ``days`` days of PV starts."""

    time_of_day: float
    days: int
    offset: int

    def on(self, day: int) -> float:
        """The Unix time of the estimated sunrise on ``day`` (``day_number``)."""
        return day * DAY - self.offset + self.time_of_day

    def next(self, now: float, started_today: bool) -> float:
        """The next sunrise after ``now``: today's while today's PV has not started and now is before it (or
        less than ``LATE`` past it: then it is due, and its time is in the past), else tomorrow's."""
        today = self.on(day_number(now, self.offset))
        if not started_today and now < today + LATE:
            return today
        return today + DAY


def estimate(starts: Sequence[float], offset: int, min_days: int = MIN_DAYS) -> Estimate | None:
    """The sunrise from the PV starts of past days (Unix times), or None with fewer than ``min_days``."""
    if len(starts) < min_days:
        return None
    return Estimate(statistics.median(time_of_day(t, offset) for t in starts), len(starts), offset)


@dataclass(slots=True)
class History:
    """What the data log says of the last days, kept fresh by ``datalog.sunrise_scan``: the estimate from the
    days before ``scanned`` (the local date of the scan), today's PV start if the log already had one, and the
    median peak PV power of those days (so today's start is seen live with a threshold like theirs)."""

    estimate: Estimate | None = None
    scanned: dt.date | None = None
    today_start: float | None = None
    peak: float = 0.0

    def take(self, fresh: History) -> None:
        """Become ``fresh`` (a new scan), in place: the forecaster holding this one sees it at its next poll."""
        self.estimate, self.scanned, self.today_start, self.peak = (
            fresh.estimate, fresh.scanned, fresh.today_start, fresh.peak)  # fmt: skip
