"""Reading → NUT variables: pure and table-driven. Only names from NUT's nut-names list, or experimental.*.

Status rules (also in the README):
- OL while PV is present and the battery is not discharging: the sun carries the load, or charges.
- OB otherwise: no PV input, or too little to stop the battery draining. A source that knows line power
  itself (``Reading.on_line``, e.g. an Envoy's grid relay) decides OL/OB instead.
- LB when battery.charge < battery.charge.low, or when the controller itself reports under-voltage
  or low-voltage disconnect.
- CHRG while the net battery current is into the battery; DISCHRG while it is out of it.
- ALARM when the controller reports a fault; the faults are listed in ups.alarm.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from nutbridge.model import ChargeStage, DeviceInfo, Reading

# Below this net battery current (A) the battery counts as idle: sensors read a few 10 mA of noise.
IDLE_CURRENT = 0.05
RUNTIME_CAP = 172800  # 2 days, as enphase-monitor: "practically unlimited"
DEFAULT_CHARGE_LOW = 20.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Inputs:
    """Everything a variable may be computed from; ``charge_low`` and ``capacity`` may come from the port file."""

    reading: Reading
    info: DeviceInfo
    charge_low: float
    capacity: float | None  # Ah
    voltage_nominal: float | None


Value = float | int | str | None
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Var:
    """One NUT variable: how to compute it and how to print it.

    A ``reference`` variable is a setting rather than a measurement: when the port file already sets
    it, the hand-written value is respected and never overwritten.
    """

    name: str
    value: Callable[[Inputs], Value]
    fmt: str = "{}"
    reference: bool = False


def charging(r: Reading) -> bool:
    """True while current flows into the battery (or the charger says so when current is unknown)."""
    if r.battery_current is None:
        return r.charge_stage not in (None, ChargeStage.OFF)
    return r.battery_current > IDLE_CURRENT


def discharging(r: Reading) -> bool:
    """True while current flows out of the battery."""
    return r.battery_current is not None and r.battery_current < -IDLE_CURRENT


def on_line(r: Reading) -> bool:
    """The OL/OB decision: the source's own verdict, else PV present and the battery not draining."""
    if r.on_line is not None:
        return r.on_line
    return (r.pv_power or 0) > 0 and not discharging(r)


def ups_status(x: Inputs) -> str:
    """ups.status from the rules in the module docstring."""
    r = x.reading
    tokens = ["OL" if on_line(r) else "OB"]
    if r.battery_low or (r.battery_charge is not None and r.battery_charge < x.charge_low):
        tokens.append("LB")
    if charging(r):
        tokens.append("CHRG")
    elif discharging(r):
        tokens.append("DISCHRG")
    if r.faults:
        tokens.append("ALARM")
    return " ".join(tokens)


def charger_status(r: Reading) -> str:
    """battery.charger.status: the newer NUT spelling of CHRG/DISCHRG."""
    if charging(r):
        return "floating" if r.charge_stage is ChargeStage.FLOAT else "charging"
    return "discharging" if discharging(r) else "resting"


def runtime(x: Inputs) -> int | None:
    """Seconds the stored energy carries the present load alone: charge × capacity × nominal V ÷ load W."""
    r = x.reading
    volts = x.voltage_nominal or r.battery_voltage
    if r.battery_charge is None or not x.capacity or not volts:
        return None
    if not r.load_power or r.load_power <= 0:
        return RUNTIME_CAP
    watt_hours = r.battery_charge / 100 * x.capacity * volts
    return min(RUNTIME_CAP, int(watt_hours / r.load_power * 3600))


def load_percent(x: Inputs) -> float | None:
    """ups.load: the load current as a share of the controller's rated load current."""
    rated, amps = x.info.load_current_rated, x.reading.load_current
    return None if not rated or amps is None else 100 * amps / rated


def alarm(r: Reading) -> str | None:
    """ups.alarm: the controller's faults, or None (deleted) when there are none."""
    return "; ".join(r.faults) or None


def description(i: DeviceInfo) -> str:
    """device.description: the controller and its rated PV input."""
    rated = [
        f"{v:g} {unit}"
        for v, unit in ((i.pv_voltage_rated, "V"), (i.pv_current_rated, "A"), (i.pv_power_rated, "W"))
        if v
    ]
    return f"{i.mfr} {i.model} solar charge controller" + (f", PV {' / '.join(rated)}" if rated else "")


V2, A2, W1, T1, P0, P1, KWH = "{:.2f}", "{:.2f}", "{:.1f}", "{:.1f}", "{:.0f}", "{:.1f}", "{:.2f}"

VARIABLES: tuple[Var, ...] = (
    # --- status ---
    Var(name="ups.status", value=ups_status),
    Var(name="ups.alarm", value=lambda x: alarm(x.reading)),
    # --- battery ---
    Var(name="battery.charge", value=lambda x: x.reading.battery_charge, fmt=P0),
    Var(name="battery.charge.low", value=lambda x: x.charge_low, fmt="{:g}", reference=True),
    Var(name="battery.voltage", value=lambda x: x.reading.battery_voltage, fmt=V2),
    Var(name="battery.current", value=lambda x: x.reading.battery_current, fmt=A2),
    Var(name="battery.temperature", value=lambda x: x.reading.battery_temperature, fmt=T1),
    Var(name="battery.runtime", value=runtime),
    Var(name="battery.charger.status", value=lambda x: charger_status(x.reading)),
    Var(name="battery.capacity", value=lambda x: x.capacity, fmt="{:g}", reference=True),
    Var(name="battery.type", value=lambda x: x.info.battery_type, reference=True),
    Var(name="battery.voltage.nominal", value=lambda x: x.voltage_nominal, fmt="{:g}", reference=True),
    Var(name="battery.voltage.low", value=lambda x: x.info.battery_voltage_low, fmt=V2, reference=True),
    Var(name="battery.voltage.high", value=lambda x: x.info.battery_voltage_high, fmt=V2, reference=True),
    # --- input: the PV array ---
    Var(name="input.voltage", value=lambda x: x.reading.pv_voltage, fmt=V2),
    Var(name="input.current", value=lambda x: x.reading.pv_current, fmt=A2),
    Var(name="input.realpower", value=lambda x: x.reading.pv_power, fmt=W1),
    Var(name="input.voltage.nominal", value=lambda x: x.info.pv_voltage_rated, fmt="{:g}"),
    Var(name="input.current.nominal", value=lambda x: x.info.pv_current_rated, fmt="{:g}"),
    Var(name="input.realpower.nominal", value=lambda x: x.info.pv_power_rated, fmt="{:g}"),
    # --- output: the load terminals ---
    Var(name="output.voltage", value=lambda x: x.reading.load_voltage, fmt=V2),
    Var(name="output.current", value=lambda x: x.reading.load_current, fmt=A2),
    Var(name="output.realpower", value=lambda x: x.reading.load_power, fmt=W1),
    Var(name="output.current.nominal", value=lambda x: x.info.load_current_rated, fmt="{:g}"),
    Var(name="ups.load", value=load_percent, fmt=P1),
    # --- the controller ---
    Var(name="ups.temperature", value=lambda x: x.reading.controller_temperature, fmt=T1),
    Var(name="ups.mfr", value=lambda x: x.info.mfr, reference=True),
    Var(name="ups.model", value=lambda x: x.info.model, reference=True),
    Var(name="ups.firmware", value=lambda x: x.info.firmware),
    # dummy-ups copies ups.mfr/ups.model over device.* at start; writing both keeps them in step.
    Var(name="device.mfr", value=lambda x: x.info.mfr, reference=True),
    Var(name="device.model", value=lambda x: x.info.model, reference=True),
    Var(name="device.description", value=lambda x: description(x.info)),
    # --- statistics NUT has no names for ---
    Var(name="experimental.pv.energy.today", value=lambda x: x.reading.energy_generated_today, fmt=KWH),
    Var(name="experimental.pv.energy.total", value=lambda x: x.reading.energy_generated_total, fmt=KWH),
    Var(name="experimental.load.energy.today", value=lambda x: x.reading.energy_consumed_today, fmt=KWH),
    Var(name="experimental.load.energy.total", value=lambda x: x.reading.energy_consumed_total, fmt=KWH),
    Var(name="experimental.battery.voltage.max.today", value=lambda x: x.reading.battery_voltage_max_today, fmt=V2),
    Var(name="experimental.battery.voltage.min.today", value=lambda x: x.reading.battery_voltage_min_today, fmt=V2),
)

REFERENCE_NAMES = frozenset(v.name for v in VARIABLES if v.reference)


def number(text: str | None) -> float | None:
    """A hand-written numeric value from the port file, or None when absent or not a number."""
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def first(value: T | None, default: T) -> T:
    """``value`` unless it is None (0 is a valid hand-written value, so ``or`` won't do)."""
    return default if value is None else value


def nut_values(reading: Reading, info: DeviceInfo, by_hand: Mapping[str, str]) -> dict[str, str | None]:
    """The NUT variables for one reading; None means "delete". ``by_hand`` holds the port file's own values.

    Reference variables the port file sets are left out (they stay as written) but still feed the
    formulas: battery.charge.low for LB, battery.capacity and battery.voltage.nominal for runtime.
    """
    inputs = Inputs(
        reading=reading,
        info=info,
        charge_low=first(number(by_hand.get("battery.charge.low")), DEFAULT_CHARGE_LOW),
        capacity=first(number(by_hand.get("battery.capacity")), info.battery_capacity),
        voltage_nominal=first(number(by_hand.get("battery.voltage.nominal")), info.battery_voltage_nominal),
    )
    values: dict[str, str | None] = {}
    for var in VARIABLES:
        if var.reference and var.name in by_hand:
            continue
        value = var.value(inputs)
        values[var.name] = None if value is None else var.fmt.format(value)
    return values
