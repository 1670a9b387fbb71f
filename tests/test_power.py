"""The power state of a reading (power.py): OL/OB with its hysteresis, LB, CHRG/DISCHRG, ALARM, as the words NUT's
ups.status shows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from nutbridge.model import ChargeStage, DeviceInfo, Reading
from nutbridge.power import DEFAULT_CHARGE_LOW, LowVoltage, PowerState, power_state, with_reserve
from tests.helpers.readings import reading


def words(r: Reading, *, charge_low: float = DEFAULT_CHARGE_LOW, previous: PowerState | None = None) -> str:
    return " ".join(power_state(r, charge_low=charge_low, previous=previous).tokens())


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, "OL CHRG"),  # the sun charges
        ({"battery_current": 0.0, "charge_stage": ChargeStage.FLOAT}, "OL"),  # the sun carries the load, full
        ({"pv_power": 0.0, "battery_current": -1.2, "charge_stage": ChargeStage.OFF}, "OB DISCHRG"),  # night
        ({"pv_power": 5.0, "battery_current": -0.8, "charge_stage": ChargeStage.OFF}, "OB DISCHRG"),  # dusk
        ({"pv_power": 0.0, "battery_current": -1.2, "battery_charge": 19}, "OB LB DISCHRG"),
        ({"pv_power": 0.0, "battery_current": -1.2, "battery_charge": 20}, "OB DISCHRG"),  # strictly below
        ({"battery_low": True}, "OL LB CHRG"),  # the controller's own under-voltage flag
        ({"faults": ("load short circuit",)}, "OL CHRG ALARM"),
        ({"on_line": False}, "OB CHRG"),  # a source that knows line power decides
    ],
)
def test_status_rules(kw: dict[str, object], expected: str) -> None:
    assert words(reading(**kw)) == expected


def test_a_hand_set_charge_low_decides_lb() -> None:
    assert words(reading(pv_power=0.0, battery_current=-1.0, battery_charge=35), charge_low=40) == "OB LB DISCHRG"
    assert words(reading(pv_power=0.0, battery_current=-1.0, battery_charge=35)) == "OB DISCHRG"


@pytest.mark.parametrize(
    ("was_on_line", "current", "on_line"),
    [
        (True, -0.1, True),  # a small draw under sun: OL holds
        (True, -0.25, False),  # a clear drain: OB
        (False, 0.03, False),  # a trickle in: OB holds
        (False, 0.1, True),  # a clear charge: OL again
        (None, -0.04, True),  # at start, idle within the noise is OL
        (None, -0.1, False),
    ],
)
def test_ol_ob_hysteresis(was_on_line: bool | None, current: float, on_line: bool) -> None:
    previous = None
    if was_on_line is not None:
        previous = PowerState(on_line=was_on_line, low=False, charging=False, discharging=False, alarm=False)
    state = power_state(reading(pv_power=12.0, battery_current=current), charge_low=20, previous=previous)
    assert state.on_line is on_line


def test_no_pv_is_ob_and_a_source_that_knows_line_power_decides() -> None:
    on_line = PowerState(on_line=True, low=False, charging=True, discharging=False, alarm=False)
    assert not power_state(reading(pv_power=0.0, battery_current=0.5), charge_low=20, previous=on_line).on_line
    assert power_state(reading(pv_power=0.0, on_line=True), charge_low=20, previous=None).on_line
    assert not power_state(reading(battery_current=5.0, on_line=False), charge_low=20, previous=on_line).on_line


def test_without_a_current_the_charger_stage_says_whether_it_charges() -> None:
    assert words(reading(battery_current=None)) == "OL CHRG"
    assert words(reading(battery_current=None, charge_stage=ChargeStage.OFF)) == "OL"


# EPEver's 12 V defaults (epever-load-control.md [TD]): the controller cuts its load terminal at 11.10 V.
TRACER_12V = DeviceInfo(mfr="EPEVER", model="Tracer", battery_voltage_disconnect=11.10, battery_voltage_nominal=12.0,
                        battery_capacity=100.0)  # fmt: skip
GUARD = LowVoltage(margin=0.3, shutdown_seconds=180.0)


def near(volts: float, amps: float, info: DeviceInfo = TRACER_12V, previous: PowerState | None = None) -> bool:
    """LB from the voltage alone: a charge well above battery.charge.low, no flag from the controller."""
    r = reading(pv_power=0.0, battery_voltage=volts, battery_current=amps, battery_charge=60)
    return power_state(r, charge_low=20, previous=previous, info=info, low_voltage=GUARD).low


@pytest.mark.parametrize(
    ("volts", "amps", "low"),
    [
        # a Pi's 0.5 A for 180 s is 0.025 Ah, 0.025 % of 100 Ah: 0.001 V; LB at 11.10 + 0.30 + 0.001 = 11.401 V
        (11.45, -0.5, False),
        (11.40, -0.5, True),
        # 20 A for 180 s is 1 Ah, 1 %: 0.04 V; LB at 11.44 V
        (11.43, -20.0, True),
        (11.45, -20.0, False),
        # charging: no drain, LB at 11.40 V
        (11.41, 2.0, False),
        (11.40, 2.0, True),
    ],
)
def test_lb_comes_before_the_controllers_own_disconnect(volts: float, amps: float, low: bool) -> None:
    assert near(volts, amps) is low


def test_the_margin_scales_with_the_battery_and_holds_until_the_voltage_is_back() -> None:
    info_24 = DeviceInfo(mfr="EPEVER", model="Tracer", battery_voltage_disconnect=22.20, battery_voltage_nominal=24.0)
    assert near(22.80, 0.0, info_24) and not near(22.81, 0.0, info_24)  # 22.20 + 2 x 0.30, no capacity: no drop
    was_low = PowerState(on_line=False, low=True, charging=False, discharging=True, alarm=False)
    assert near(11.45, 0.0, previous=was_low)  # rested back up a little: still LB (until 11.40 + 0.10)
    assert not near(11.51, 0.0, previous=was_low)


def test_no_disconnect_no_guard() -> None:
    gateway = DeviceInfo(mfr="Enphase", model="IQ Gateway", battery_voltage_nominal=12.0)
    assert not near(10.0, -5.0, gateway)  # a device that cuts nothing at a voltage: only the charge says LB
    r = reading(pv_power=0.0, battery_voltage=10.0, battery_current=-5.0, battery_charge=60)
    assert not power_state(r, charge_low=20, previous=None).low  # and the guard is off unless asked for


# The sunrise reserve (power.with_reserve): a reserve of 30 %, RESERVE_CLEAR (10) points to clear it on battery.
NIGHT = {"pv_power": 0.0, "battery_current": -1.2, "battery_charge": 60}


def reserve_steps(steps: Sequence[tuple[Mapping[str, object], float | None]], reserve: float = 30.0) -> list[str]:
    """ups.status after each (reading's changes, expected charge at sunrise) in turn, the state carried over."""
    previous: PowerState | None = None
    seen = []
    for kw, sunrise_charge in steps:
        r = reading(**kw)
        state = with_reserve(power_state(r, charge_low=20, previous=previous), previous, sunrise_charge, reserve)
        seen.append(" ".join(state.tokens()))
        previous = state
    return seen


def test_the_reserve_raises_lb_on_battery_when_sunrise_would_find_less() -> None:
    assert reserve_steps([(NIGHT, 45.0), (NIGHT, 29.0)]) == ["OB DISCHRG", "OB LB DISCHRG"]


def test_the_reserve_never_flaps_across_its_boundary() -> None:
    # the expected charge wavers around 30 %: raised at 29.5, held at 30.5, 31, 35 and 39.9 (under 30 + 10),
    # cleared at 40 on battery; then raised again only below 30
    charges = [31.0, 29.5, 30.5, 29.9, 31.0, 35.0, 39.9, 40.0, 35.0, 29.0]
    assert reserve_steps([(NIGHT, c) for c in charges]) == [
        "OB DISCHRG",
        *["OB LB DISCHRG"] * 6,
        "OB DISCHRG",
        "OB DISCHRG",
        "OB LB DISCHRG",
    ]


def test_the_reserve_holds_until_the_power_is_back() -> None:
    resting = {"pv_power": 0.0, "battery_current": 0.0, "battery_charge": 60}  # no longer discharging: still held
    dawn = {"pv_power": 40.0, "battery_current": 1.5, "battery_charge": 60}  # PV charges it: OL
    steps = [(NIGHT, 25.0), (resting, 25.0), (resting, None), (dawn, 25.0), (NIGHT, 25.0)]
    assert reserve_steps(steps) == ["OB LB DISCHRG", "OB LB", "OB LB", "OL CHRG", "OB LB DISCHRG"]


def test_the_reserve_acts_only_while_discharging_on_battery() -> None:
    resting = {"pv_power": 0.0, "battery_current": 0.0, "battery_charge": 60}
    sunny = {"battery_charge": 60}  # OL CHRG
    assert reserve_steps([(resting, 10.0), (sunny, 10.0), (NIGHT, None)]) == ["OB", "OL CHRG", "OB DISCHRG"]


def test_charge_low_still_raises_lb_whatever_the_reserve_says() -> None:
    low = NIGHT | {"battery_charge": 15}
    assert reserve_steps([(low, 80.0)]) == ["OB LB DISCHRG"]  # 15 % < battery.charge.low's 20 %
