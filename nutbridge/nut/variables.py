"""Reading → NUT variables: one walker for every table, and the rows every battery system shares.

Each device family brings its own table (the Tracer's maps PV to ``input.*``; a gateway maps grid meters
there); ``ups.status`` spells the power state the monitor computed (``power.py``). NUT is one view of a poll:
``view`` binds a table and the port file's hand-set settings into the one the daemon hands the monitor.
Only names from NUT's nut-names list are written, or ``experimental.*``. Pure: no I/O.

A ``setting`` row is a value a person may set by hand in the port file (battery.charge.low,
battery.capacity, ups.model …): where the file sets it, that value wins, and it feeds the formulas.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from nutbridge.model import ChargeStage, DeviceInfo, Reading
from nutbridge.outlook import Outlook
from nutbridge.power import DEFAULT_CHARGE_LOW, PowerState, drain_watts

RUNTIME_CAP = 172800  # 2 days, as enphase-monitor: "practically unlimited"

Value = float | int | str | None
T = TypeVar("T")
# A table is typed over its family's reading and info types, so a family's rows read its own fields without a
# downcast; the shared rows (over Reading and DeviceInfo) fit every table.
R = TypeVar("R", bound=Reading)
Inf = TypeVar("Inf", bound=DeviceInfo)
R_co = TypeVar("R_co", bound=Reading, covariant=True)
I_co = TypeVar("I_co", bound=DeviceInfo, covariant=True)
R_contra = TypeVar("R_contra", bound=Reading, contravariant=True)
I_contra = TypeVar("I_contra", bound=DeviceInfo, contravariant=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Inputs(Generic[R_co, I_co]):
    """Everything a row may be computed from; the three settings may come from the port file."""

    reading: R_co
    info: I_co
    power: PowerState
    charge_low: float
    capacity: float | None  # Ah
    voltage_nominal: float | None
    by_hand: Mapping[str, str]  # every setting the port file sets by hand, for a family's own formulas
    outlook: Outlook | None = None  # the next sunrise and the charge then (outlook.py); None: unknown


@dataclass(frozen=True, slots=True, kw_only=True)
class Var(Generic[R_contra, I_contra]):
    """One NUT variable: how to compute it (from its family's reading and info types) and how to print it."""

    name: str
    value: Callable[[Inputs[R_contra, I_contra]], Value]
    fmt: str = "{}"
    setting: bool = False


def runtime(x: Inputs[Reading, DeviceInfo]) -> int | None:
    """Seconds until battery.charge.low (where NUT shuts down) at the present drain; capped at 2 days."""
    r = x.reading
    volts = x.voltage_nominal or r.battery_voltage
    if r.battery_charge is None or not x.capacity or not volts:
        return None
    watts = drain_watts(r)
    if watts <= 0:
        return RUNTIME_CAP
    usable_wh = max(0.0, r.battery_charge - x.charge_low) / 100 * x.capacity * volts
    return min(RUNTIME_CAP, int(usable_wh / watts * 3600))


def charger_status(x: Inputs[Reading, DeviceInfo]) -> str:
    """battery.charger.status: the newer NUT spelling of CHRG/DISCHRG."""
    if x.power.charging:
        return "floating" if x.reading.charge_stage is ChargeStage.FLOAT else "charging"
    return "discharging" if x.power.discharging else "resting"


@functools.lru_cache(maxsize=4)
def local_iso(t: float, _zone: tuple[str, str]) -> str:
    """``t`` as local ISO 8601 with its offset; cached by time and zone (``time.tzname``): the sunrise is the
    same for a day of polls, and formatting it is most of what the outlook costs a poll."""
    return dt.datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def sunrise_time(x: Inputs[Reading, DeviceInfo]) -> str | None:
    """experimental.sunrise.time: the next sunrise, local ISO 8601 with the zone (in the past while it is due)."""
    return None if x.outlook is None else local_iso(x.outlook.sunrise, time.tzname)


V2, A2, W1, T1, P0, P1, KWH = "{:.2f}", "{:.2f}", "{:.1f}", "{:.1f}", "{:.0f}", "{:.1f}", "{:.2f}"

# Rows every battery system has; a family's table starts with these.
COMMON: tuple[Var[Reading, DeviceInfo], ...] = (
    Var(name="ups.status", value=lambda x: " ".join(x.power.tokens())),
    Var(name="ups.alarm", value=lambda x: "; ".join(x.reading.faults) or None),
    Var(name="battery.charge", value=lambda x: x.reading.battery_charge, fmt=P0),
    Var(name="battery.charge.low", value=lambda x: x.charge_low, fmt="{:g}", setting=True),
    Var(name="battery.voltage", value=lambda x: x.reading.battery_voltage, fmt=V2),
    Var(name="battery.current", value=lambda x: x.reading.battery_current, fmt=A2),
    Var(name="battery.temperature", value=lambda x: x.reading.battery_temperature, fmt=T1),
    Var(name="battery.runtime", value=runtime),
    Var(name="battery.charger.status", value=charger_status),
    Var(name="battery.capacity", value=lambda x: x.capacity, fmt="{:g}", setting=True),
    Var(name="battery.type", value=lambda x: x.info.battery_type, setting=True),
    Var(name="battery.voltage.nominal", value=lambda x: x.voltage_nominal, fmt="{:g}", setting=True),
    Var(name="battery.voltage.low", value=lambda x: x.info.battery_voltage_low, fmt=V2, setting=True),
    Var(name="battery.voltage.high", value=lambda x: x.info.battery_voltage_high, fmt=V2, setting=True),
    # Will the battery last until sunrise? (outlook.py; none of these while the sunrise is unknown)
    Var(name="experimental.battery.charge.sunrise", value=lambda x: x.outlook.charge if x.outlook else None, fmt=P0),
    Var(name="experimental.sunrise.time", value=sunrise_time),
    Var(name="experimental.sunrise.timer", value=lambda x: x.outlook.seconds if x.outlook else None, fmt="{:d}"),
)


def identity_rows(description: Callable[[Inf], str]) -> tuple[Var[Reading, Inf], ...]:
    """The device's name rows; dummy-ups copies ups.mfr/ups.model over device.* at start, so both are written
    to keep them in step."""
    return (
        Var(name="ups.mfr", value=lambda x: x.info.mfr, setting=True),
        Var(name="ups.model", value=lambda x: x.info.model, setting=True),
        Var(name="ups.firmware", value=lambda x: x.info.firmware),
        Var(name="device.mfr", value=lambda x: x.info.mfr, setting=True),
        Var(name="device.model", value=lambda x: x.info.model, setting=True),
        Var(name="device.description", value=lambda x: description(x.info)),
    )


def hand_set_number(text: str | None) -> float | None:
    """A hand-written numeric value from the port file, or None when absent or not a number."""
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def first(value: T | None, default: T) -> T:
    """``value`` unless it is None (0 is a valid hand-written value, so ``or`` won't do)."""
    return default if value is None else value


def setting_names(table: Sequence[Var[R, Inf]]) -> frozenset[str]:
    """The names in ``table`` a person may set by hand."""
    return frozenset(v.name for v in table if v.setting)


def charge_low(by_hand: Mapping[str, str]) -> float:
    """battery.charge.low as the port file sets it by hand, else the default (LB is below it)."""
    return first(hand_set_number(by_hand.get("battery.charge.low")), DEFAULT_CHARGE_LOW)


def evaluate(
    table: Sequence[Var[R, Inf]],
    reading: R,
    info: Inf,
    by_hand: Mapping[str, str],
    power: PowerState,
    *,
    outlook: Outlook | None = None,
) -> dict[str, str | None]:
    """The NUT variables of one reading and its power state (None = delete).

    ``by_hand`` holds the settings the port file sets by hand: they appear as written and feed the
    formulas (battery.charge.low, battery.capacity and battery.voltage.nominal for runtime).
    """
    inputs = Inputs(
        reading=reading,
        info=info,
        power=power,
        charge_low=charge_low(by_hand),
        capacity=first(hand_set_number(by_hand.get("battery.capacity")), info.battery_capacity),
        voltage_nominal=first(hand_set_number(by_hand.get("battery.voltage.nominal")), info.battery_voltage_nominal),
        by_hand=by_hand,
        outlook=outlook,
    )
    values: dict[str, str | None] = {}
    for var in table:
        if var.setting and var.name in by_hand:
            values[var.name] = by_hand[var.name]
            continue
        value = var.value(inputs)
        values[var.name] = None if value is None else var.fmt.format(value)
    return values


def view(
    table: Sequence[Var[R, Inf]], settings: Callable[[], Mapping[str, str]]
) -> Callable[[R, Inf, PowerState, Outlook | None], dict[str, str | None]]:
    """The NUT view the monitor derives per poll: ``table``'s variables with the hand-set ``settings`` (read
    once per poll) applied."""

    def variables(reading: R, info: Inf, power: PowerState, outlook: Outlook | None) -> dict[str, str | None]:
        return evaluate(table, reading, info, settings(), power, outlook=outlook)

    return variables
