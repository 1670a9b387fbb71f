"""Reading → NUT variables: ups.status from the power state (its rules: tests/test_power.py), derived values, names,
respect for hand-set values."""

from __future__ import annotations

from pathlib import Path

from nutbridge.devices.tracer.nut import TABLE
from nutbridge.model import DeviceInfo, Reading
from nutbridge.nut.variables import RUNTIME_CAP, charge_low, evaluate, setting_names
from nutbridge.power import power_state
from tests.helpers.readings import reading

INFO = DeviceInfo(
    mfr="EPsolar Tech co., Ltd",
    model="Tracer2210AN",
    firmware="V02.13+V07.21",
    battery_type="PbAc sealed",
    battery_capacity=100,
    battery_voltage_nominal=12,
    pv_voltage_rated=100,
    pv_current_rated=20,
    pv_power_rated=260,
    load_current_rated=20,
)
NAMES_FILE = Path(__file__).parents[2] / "test-fixtures" / "nut-names.txt"


def nut_values(r: Reading, info: DeviceInfo, by_hand: dict[str, str]) -> dict[str, str | None]:
    return evaluate(TABLE, r, info, by_hand, power_state(r, charge_low=charge_low(by_hand), previous=None))


def status(r: Reading, by_hand: dict[str, str] | None = None) -> str | None:
    return nut_values(r, INFO, by_hand or {})["ups.status"]


def test_ups_status_spells_the_power_state() -> None:
    night = reading(pv_power=0.0, battery_current=-1.2, battery_charge=19, faults=("load short circuit",))
    state = power_state(night, charge_low=20, previous=None)
    assert status(night) == " ".join(state.tokens()) == "OB LB DISCHRG ALARM"


def test_hand_set_charge_low_decides_lb_and_is_not_overwritten() -> None:
    values = nut_values(
        reading(pv_power=0.0, battery_current=-1.0, battery_charge=35), INFO, {"battery.charge.low": "40"}
    )
    assert values["ups.status"] == "OB LB DISCHRG"
    assert values["battery.charge.low"] == "40"  # every consumer sees the hand-set value
    assert nut_values(reading(battery_charge=35), INFO, {})["battery.charge.low"] == "20"


def test_runtime_counts_down_to_charge_low_from_capacity_and_load() -> None:
    values = nut_values(reading(battery_charge=50, load_power=60.0), INFO, {})
    assert values["battery.runtime"] == str(int((0.50 - 0.20) * 100 * 12 / 60 * 3600))  # 21600 s to 20 %
    by_hand = nut_values(
        reading(battery_charge=50, load_power=60.0), INFO, {"battery.capacity": "200", "battery.charge.low": "10"}
    )
    assert by_hand["battery.runtime"] == str(int(0.40 * 200 * 12 / 60 * 3600))  # 57600 s
    assert by_hand["battery.capacity"] == "200"
    assert nut_values(reading(battery_charge=15, load_power=60.0), INFO, {})["battery.runtime"] == "0"
    assert nut_values(reading(load_power=0.0), INFO, {})["battery.runtime"] == str(RUNTIME_CAP)


def test_runtime_counts_the_battery_drain_when_the_load_terminals_read_nothing() -> None:
    # An inverter wired to the battery: the load terminals read 0 W while the battery gives 12.5 V × 8 A.
    for load in (0.0, None):
        inverter = reading(pv_power=0.0, battery_current=-8.0, battery_voltage=12.5, battery_charge=60, load_power=load)
        values = nut_values(inverter, INFO, {})
        assert values["battery.runtime"] == str(int(0.40 * 100 * 12 / 100 * 3600))  # 100 W drain: 17280 s
        assert values["ups.status"] == "OB DISCHRG"


def test_ups_load_is_share_of_rated_load_current() -> None:
    assert nut_values(reading(load_current=5.0), INFO, {})["ups.load"] == "25.0"


def test_alarm_lists_faults_and_is_deleted_when_clear() -> None:
    assert nut_values(reading(faults=("a", "b")), INFO, {})["ups.alarm"] == "a; b"
    assert nut_values(reading(), INFO, {})["ups.alarm"] is None


def test_unmeasured_values_are_deleted_not_invented() -> None:
    values = nut_values(reading(battery_temperature=None), INFO, {})
    assert values["battery.temperature"] is None


def test_pv_is_input_load_is_output() -> None:
    values = nut_values(reading(), INFO, {})
    assert values["input.voltage"] == "19.00"
    assert values["input.realpower"] == "150.0"
    assert values["output.realpower"] == "15.0"
    assert values["ups.mfr"] == values["device.mfr"] == "EPsolar Tech co., Ltd"


def test_only_nut_names_or_experimental() -> None:
    names = {line.strip() for line in NAMES_FILE.read_text().splitlines() if line and not line.startswith("#")}
    assert "ups.status" in names and len(names) > 200
    unknown = [v.name for v in TABLE if v.name not in names and not v.name.startswith("experimental.")]
    assert unknown == []


def test_names_are_unique() -> None:
    assert len({v.name for v in TABLE}) == len(TABLE)


def test_settings_are_what_a_person_may_set() -> None:
    assert setting_names(TABLE) >= {"battery.charge.low", "battery.capacity", "battery.type", "ups.model"}
    assert "battery.charge" not in setting_names(TABLE)
