"""The expected charge at sunrise, from a known drain, capacity and time, by the formula outlook.py documents:
charge at sunrise = max(0, charge − 100 × drain W × hours / capacity Wh). Every expected value is worked out by
hand in its comment."""

from __future__ import annotations

import pytest

from nutbridge.model import DeviceInfo, Reading
from nutbridge.outlook import Drain, Forecaster, capacity_wh, charge_at
from nutbridge.sunrise import DAY, SUSTAIN, Estimate, History

TRACER = DeviceInfo(mfr="EPEver", model="Tracer", battery_capacity=100.0, battery_voltage_nominal=12.0)


def test_the_charge_at_sunrise_by_hand() -> None:
    # 100 Ah × 12 V = 1200 Wh; 15 W for 10 h = 150 Wh = 12.5 % of it: 80 − 12.5 = 67.5 %
    assert charge_at(80.0, 15.0, 1200.0, 10 * 3600) == pytest.approx(67.5)
    # 40 W for 9 h 12 min (9.2 h) = 368 Wh = 30.67 % of 1200 Wh: 64.67 − 30.67 = 34.0 %
    assert charge_at(64.67, 40.0, 1200.0, 9.2 * 3600) == pytest.approx(34.0, abs=0.01)
    # 60 W for 12 h = 720 Wh = 60 % of 1200 Wh, from 30 %: below empty, floored at 0
    assert charge_at(30.0, 60.0, 1200.0, 12 * 3600) == 0.0


def test_the_capacity_in_watt_hours() -> None:
    assert capacity_wh(TRACER, 100.0, 12.0) == 1200.0  # 100 Ah × 12 V
    assert capacity_wh(TRACER, 200.0, 24.0) == 4800.0  # the port file's battery.capacity and voltage.nominal
    assert capacity_wh(DeviceInfo(mfr="Tesla", model="Powerwall", battery_energy=13500.0), None, None) == 13500.0
    assert capacity_wh(DeviceInfo(mfr="x", model="y"), None, 12.0) is None


def test_the_drain_is_the_mean_of_the_last_five_minutes() -> None:
    drain = Drain(window=300.0)
    # a reading a minute: 15, 15, 75 (a spike), 15, 15 → (15 + 15 + 75 + 15 + 15) / 5 = 27
    means = [drain.add(t, w) for t, w in ((0, 15.0), (60, 15.0), (120, 75.0), (180, 15.0), (240, 15.0))]
    assert means[-1] == pytest.approx(27.0)
    # at 300 s the reading of 0 s leaves the window: (15 + 75 + 15 + 15 + 15) / 5 = 27; at 420 the spike has left
    assert drain.add(300, 15.0) == pytest.approx(27.0)
    assert drain.add(360, 15.0) == pytest.approx(27.0)  # 60 s left: 75 + 4 × 15 = 135 / 5
    assert drain.add(420, 15.0) == pytest.approx(15.0)
    assert drain.add(100, 30.0) == 30.0  # the clock went back: the window starts again


def night(t: float, **kw: float) -> Reading:
    values = {"battery_charge": 80.0, "battery_voltage": 12.4, "battery_current": -1.3, "pv_power": 0.0,
              "load_power": 15.0} | kw  # fmt: skip
    return Reading(time=t, **values)  # type: ignore[arg-type]


# The sunrise at 06:00 in UTC (offset 0); the day 20000 is 2024-10-04.
SUNRISE = Estimate(time_of_day=6 * 3600.0, days=7, offset=0)
DAY0 = 20000 * DAY


def test_the_forecaster_at_night() -> None:
    forecaster = Forecaster(History(estimate=SUNRISE, peak=100.0), lambda info: capacity_wh(info, 100.0, 12.0))
    now = DAY0 + 20 * 3600  # 20:00: the sunrise is tomorrow's, 10 h away
    outlook = forecaster.update(night(now, battery_current=-1.0), TRACER)
    assert outlook is not None
    assert outlook.sunrise == DAY0 + DAY + 6 * 3600
    assert outlook.seconds == 10 * 3600
    assert outlook.drain == 15.0  # the 15 W load: more than the battery's own 1.0 A × 12.4 V = 12.4 W
    # 100 Ah × 12 V = 1200 Wh; 15 W × 10 h = 150 Wh = 12.5 %: 80 − 12.5 = 67.5 %
    assert outlook.charge == pytest.approx(67.5)


def test_the_drain_is_the_larger_of_the_load_and_the_battery() -> None:
    forecaster = Forecaster(History(estimate=SUNRISE, peak=100.0), lambda info: 1200.0)
    outlook = forecaster.update(night(DAY0 + 20 * 3600), TRACER)
    assert outlook is not None
    # 1.3 A × 12.4 V = 16.12 W drawn from the battery, more than the 15 W load; 16.12 W × 10 h = 161.2 Wh
    # = 13.43 % of 1200 Wh: 80 − 13.43 = 66.57 %
    assert outlook.drain == pytest.approx(16.12)
    assert outlook.charge == pytest.approx(66.57, abs=0.01)


def test_without_history_or_capacity_nothing_is_guessed() -> None:
    assert Forecaster(History(), lambda info: 1200.0).update(night(DAY0), TRACER) is None
    outlook = Forecaster(History(estimate=SUNRISE), lambda info: None).update(night(DAY0 + 3600), TRACER)
    assert outlook is not None
    assert outlook.charge is None  # the sunrise is known, the battery's size is not
    assert outlook.seconds == 5 * 3600


def test_pv_seen_starting_today_moves_the_sunrise_to_tomorrow() -> None:
    forecaster = Forecaster(History(estimate=SUNRISE, peak=100.0), lambda info: 1200.0)
    dawn = DAY0 + 5 * 3600  # 05:00, PV comes early: 10 W (over 2 % of the 100 W peak) from then on
    first = forecaster.update(night(dawn, pv_power=10.0), TRACER)
    assert first is not None
    assert first.sunrise == DAY0 + 6 * 3600  # not sustained yet: today's
    later = forecaster.update(night(dawn + SUSTAIN, pv_power=10.0), TRACER)
    assert later is not None
    assert later.sunrise == DAY0 + DAY + 6 * 3600  # 10 minutes of PV: it started today
