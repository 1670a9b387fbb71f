"""What a source hands the monitor: typed, timestamped readings in SI units, each measured field saying its
quantity and unit (``measure``). No I/O here."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields


class ChargeStage(enum.Enum):
    """What the charger is doing, as the controller reports it."""

    OFF = "off"
    FLOAT = "float"
    BOOST = "boost"
    EQUALIZE = "equalize"


class Period(enum.Enum):
    """Over what time a measured value stands."""

    NOW = "now"  # the value at the poll
    DAY = "day"  # summed since midnight on the device's clock: it starts again from 0 every day
    LIFETIME = "lifetime"  # summed since the device began: it only grows


@dataclass(frozen=True, slots=True)
class Measure:
    """What a Reading field measures, in the model's units. The consumers that name a unit (Home Assistant's
    discovery, /metrics) take it from here, never from the field's name; a field without one is no measurement.

    ``quantity`` is one of power, voltage, current, temperature, charge (state of charge), energy, or a family's
    own word (a consumer that does not know it shows the value with its unit and no class).
    """

    quantity: str
    unit: str  # W, V, A, °C, %, kWh, or a family's own
    period: Period = Period.NOW


MEASURE = "nutbridge.measure"  # the key of a field's metadata that holds its Measure


def measure(quantity: str, unit: str, period: Period = Period.NOW) -> Mapping[str, Measure]:
    """The metadata of a measured field: ``grid_power: float | None = field(default=None, metadata=measure("power",
    "W"))``."""
    return {MEASURE: Measure(quantity, unit, period)}


def measures(kind: type[Reading]) -> Mapping[str, Measure]:
    """The measured fields of a reading type (its own and the base's), by name, in the type's order."""
    return {f.name: m for f in fields(kind) if isinstance(m := f.metadata.get(MEASURE), Measure)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """One poll of a device. Volts, amperes, watts, degrees Celsius, percent, kWh; None = not measured.

    ``battery_current`` is the net current: positive while the battery charges, negative while it
    discharges. ``on_line`` is the source's own verdict on line power (an Envoy's grid relay); None
    means "infer it from PV and load" (a charge controller has no grid).
    """

    time: float
    battery_charge: float | None = field(default=None, metadata=measure("charge", "%"))
    battery_voltage: float | None = field(default=None, metadata=measure("voltage", "V"))
    battery_current: float | None = field(default=None, metadata=measure("current", "A"))
    battery_temperature: float | None = field(default=None, metadata=measure("temperature", "°C"))
    pv_voltage: float | None = field(default=None, metadata=measure("voltage", "V"))
    pv_current: float | None = field(default=None, metadata=measure("current", "A"))
    pv_power: float | None = field(default=None, metadata=measure("power", "W"))
    load_voltage: float | None = field(default=None, metadata=measure("voltage", "V"))
    load_current: float | None = field(default=None, metadata=measure("current", "A"))
    load_power: float | None = field(default=None, metadata=measure("power", "W"))
    controller_temperature: float | None = field(default=None, metadata=measure("temperature", "°C"))
    charge_stage: ChargeStage | None = None
    battery_low: bool = False
    on_line: bool | None = None
    faults: tuple[str, ...] = ()
    energy_generated_today: float | None = field(default=None, metadata=measure("energy", "kWh", Period.DAY))
    energy_consumed_today: float | None = field(default=None, metadata=measure("energy", "kWh", Period.DAY))
    energy_generated_total: float | None = field(default=None, metadata=measure("energy", "kWh", Period.LIFETIME))
    energy_consumed_total: float | None = field(default=None, metadata=measure("energy", "kWh", Period.LIFETIME))
    battery_voltage_max_today: float | None = field(default=None, metadata=measure("voltage", "V"))
    battery_voltage_min_today: float | None = field(default=None, metadata=measure("voltage", "V"))


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
    # A charge controller's own load terminal (a host may be powered from it): where the controller cuts the load
    # (its low-voltage disconnect), where it switches it back on (reconnect), where its under-voltage warning
    # clears, and how it switches the load otherwise ("manual", "light", "light+timer", "timer").
    battery_voltage_disconnect: float | None = None
    battery_voltage_reconnect: float | None = None
    battery_voltage_low_recover: float | None = None
    load_control: str | None = None
