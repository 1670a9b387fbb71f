"""The NUT table of a solar charge controller (EPEver Tracer, the simulator): PV is ``input.*``, the load
terminals are ``output.*``. Adding a variable is adding a row."""

from __future__ import annotations

from nutbridge.model import DeviceInfo, Reading
from nutbridge.nut.variables import A2, COMMON, KWH, P1, T1, V2, W1, Inputs, Var, identity_rows


def load_percent(x: Inputs[Reading, DeviceInfo]) -> float | None:
    """ups.load: the load current as a share of the controller's rated load current."""
    rated, amps = x.info.load_current_rated, x.reading.load_current
    return None if not rated or amps is None else 100 * amps / rated


def description(i: DeviceInfo) -> str:
    """device.description: the controller and its rated PV input."""
    rated = [
        f"{v:g} {unit}"
        for v, unit in ((i.pv_voltage_rated, "V"), (i.pv_current_rated, "A"), (i.pv_power_rated, "W"))
        if v
    ]
    return f"{i.mfr} {i.model} solar charge controller" + (f", PV {' / '.join(rated)}" if rated else "")


TABLE: tuple[Var[Reading, DeviceInfo], ...] = (
    *COMMON,
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
    *identity_rows(description),
    # --- statistics NUT has no names for ---
    Var(name="experimental.pv.energy.today", value=lambda x: x.reading.energy_generated_today, fmt=KWH),
    Var(name="experimental.pv.energy.total", value=lambda x: x.reading.energy_generated_total, fmt=KWH),
    Var(name="experimental.load.energy.today", value=lambda x: x.reading.energy_consumed_today, fmt=KWH),
    Var(name="experimental.load.energy.total", value=lambda x: x.reading.energy_consumed_total, fmt=KWH),
    Var(name="experimental.battery.voltage.max.today", value=lambda x: x.reading.battery_voltage_max_today, fmt=V2),
    Var(name="experimental.battery.voltage.min.today", value=lambda x: x.reading.battery_voltage_min_today, fmt=V2),
    # --- the load terminal's own settings (a host powered from it is cut at the disconnect) ---
    Var(name="experimental.battery.voltage.disconnect", value=lambda x: x.info.battery_voltage_disconnect, fmt=V2),
    Var(name="experimental.battery.voltage.reconnect", value=lambda x: x.info.battery_voltage_reconnect, fmt=V2),
    Var(name="experimental.output.control", value=lambda x: x.info.load_control),
)
