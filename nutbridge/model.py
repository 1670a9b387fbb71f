"""What a source hands the monitor: typed, timestamped readings in SI units. No I/O here."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ChargeStage(enum.Enum):
    """What the charger is doing, as the controller reports it."""

    OFF = "off"
    FLOAT = "float"
    BOOST = "boost"
    EQUALIZE = "equalize"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """One poll of a device. Volts, amperes, watts, degrees Celsius, percent, kWh; None = not measured.

    ``battery_current`` is the net current: positive while the battery charges, negative while it
    discharges. ``on_line`` is the source's own verdict on line power (an Envoy's grid relay); None
    means "infer it from PV and load" (a charge controller has no grid).
    """

    time: float
    battery_charge: float | None = None
    battery_voltage: float | None = None
    battery_current: float | None = None
    battery_temperature: float | None = None
    pv_voltage: float | None = None
    pv_current: float | None = None
    pv_power: float | None = None
    load_voltage: float | None = None
    load_current: float | None = None
    load_power: float | None = None
    controller_temperature: float | None = None
    charge_stage: ChargeStage | None = None
    battery_low: bool = False
    on_line: bool | None = None
    faults: tuple[str, ...] = ()
    energy_generated_today: float | None = None
    energy_consumed_today: float | None = None
    energy_generated_total: float | None = None
    energy_consumed_total: float | None = None
    battery_voltage_max_today: float | None = None
    battery_voltage_min_today: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceInfo:
    """What a device says about itself; read at start-up and after each reconnect."""

    mfr: str
    model: str
    firmware: str | None = None
    battery_type: str | None = None
    battery_capacity: float | None = None  # Ah
    battery_voltage_nominal: float | None = None
    battery_voltage_low: float | None = None
    battery_voltage_high: float | None = None
    pv_voltage_rated: float | None = None
    pv_current_rated: float | None = None
    pv_power_rated: float | None = None
    load_current_rated: float | None = None
    serial: str | None = None
    battery_energy: float | None = None  # Wh, where a gateway gives energy rather than ampere-hours
    battery_charge_restart: float | None = None  # %: where a gateway's battery starts again after a shutdown
