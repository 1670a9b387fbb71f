"""Will the battery last until sunrise? The expected charge at the next sunrise at the present drain, per poll.
No I/O: the sunrise comes from ``sunrise.History``, which the data log's scan keeps fresh (at start and once a
day); what runs per poll is arithmetic.

The model (also in docs/nut.md): from now until sunrise the battery carries the drain and PV gives nothing, so

    charge at sunrise = max(0, charge − 100 × drain × hours to sunrise / capacity in Wh)

with the drain the mean over the last ``WINDOW`` seconds of what the battery must carry (``power.drain_watts``: the
load, or the battery's own discharge when larger), and the capacity in Wh as the device or the port file gives
it (ampere-hours × nominal volts, or a gateway's watt-hours). Its limits: the drain is taken as constant; during
the day it ignores the PV still to come (a lower bound until sunset); and a lead-acid battery holds less than
its rated capacity at a high rate of discharge (Peukert) and in the cold, so a real night ends lower.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from nutbridge.model import DeviceInfo, Reading
from nutbridge.power import drain_watts
from nutbridge.sunrise import SUSTAIN, History, day_number, threshold

WINDOW = 300.0  # s: the drain is the mean over this long, so one spike does not swing the estimate


@dataclass(frozen=True, slots=True, kw_only=True)
class Outlook:
    """The next sunrise and the battery then: ``sunrise`` (Unix time), ``seconds`` to it (0 when it is due),
    ``charge`` (%) at it, None when the charge or the battery's size is unknown; ``drain`` (W), smoothed."""

    sunrise: float
    seconds: int
    charge: float | None
    drain: float


def charge_at(charge: float, drain: float, capacity_wh: float, seconds: float) -> float:
    """The charge (%) after ``seconds`` at ``drain`` W from ``charge`` % of ``capacity_wh``, floored at 0."""
    used = drain * seconds / 3600  # Wh
    return max(0.0, charge - 100 * used / capacity_wh)


class Drain:
    """The mean of the drain over the last ``WINDOW`` seconds of readings (a running sum: O(1) a poll)."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._values: deque[tuple[float, float]] = deque()
        self._sum = 0.0

    def add(self, t: float, watts: float) -> float:
        """Take the drain ``watts`` at ``t``; the mean of the window ending there."""
        if self._values and t < self._values[-1][0]:  # the clock went back: the old values are of another time
            self._values.clear()
            self._sum = 0.0
        self._values.append((t, watts))
        self._sum += watts
        while self._values[0][0] <= t - self.window:
            self._sum -= self._values.popleft()[1]
        return self._sum / len(self._values)


def capacity_wh(info: DeviceInfo, capacity_ah: float | None, volts: float | None) -> float | None:
    """The battery's size in Wh: a gateway's own watt-hours, else ampere-hours × nominal volts."""
    if info.battery_energy:
        return info.battery_energy
    return capacity_ah * volts if capacity_ah and volts else None


class Forecaster:
    """Per poll: today's PV start as the readings show it, the smoothed drain, and the Outlook.

    ``history`` is read, never written, here; ``capacity`` gives the battery's Wh for the device's info (with
    the port file's hand-set battery.capacity and battery.voltage.nominal).
    """

    def __init__(self, history: History, capacity: Callable[[DeviceInfo], float | None]) -> None:
        self.history = history
        self.capacity = capacity
        self.drain = Drain()
        self._run: float | None = None  # the first reading of the producing run under way
        self._started: int | None = None  # the day (day_number) PV was seen to start on, live

    def started_today(self, r: Reading, offset: int) -> bool:
        """Whether PV has started today: in the data log already, or in the readings, by the same rule."""
        today = day_number(r.time, offset)
        start = self.history.today_start
        if start is not None and day_number(start, offset) == today:
            return True
        if r.pv_power is not None and r.pv_power > threshold(self.history.peak):
            self._run = r.time if self._run is None or r.time < self._run else self._run
            if r.time - self._run >= SUSTAIN:
                self._started = day_number(self._run, offset)
        else:
            self._run = None
        return self._started == today

    def update(self, r: Reading, info: DeviceInfo) -> Outlook | None:
        """This poll's outlook; None while the sunrise is unknown (too little history)."""
        drain = self.drain.add(r.time, drain_watts(r))
        estimate = self.history.estimate
        if estimate is None:
            return None
        sunrise = estimate.next(r.time, self.started_today(r, estimate.offset))
        seconds = max(0, int(sunrise - r.time))
        wh = self.capacity(info)
        charge = None if r.battery_charge is None or not wh else charge_at(r.battery_charge, drain, wh, seconds)
        return Outlook(sunrise=sunrise, seconds=seconds, charge=charge, drain=drain)
