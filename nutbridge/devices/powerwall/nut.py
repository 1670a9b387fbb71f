"""The NUT table of a Tesla Powerwall read through a pyPowerwall proxy: the grid meter is ``input.*``, the home's
load ``output.*``; solar and the battery's own power, which NUT has no names for, are ``experimental.*``.

- ``ups.status``: OL while the gateway says ``SystemGridConnected``, OB in every other grid state (islanded,
  syncing back, faulted); LB below battery.charge.low; CHRG/DISCHRG from the battery's power (see
  ``IDLE_WATTS``), where the battery meter gives a voltage to turn it into amperes.
- ``battery.charge`` is the gateway's own state of energy (pyPowerwall's ``/soe``). Tesla's app shows
  (charge − 5) / 0.95: the app's 0 % is 5 % here, where the Powerwall stops discharging. A site the proxy
  says has no Powerwall has no battery.* values at all (so never LB), nor ups.load.
- Powers are watts: ``input.realpower`` is positive while importing from the grid and negative while
  exporting; ``experimental.battery.realpower`` is positive while the battery charges, as battery.current.
- ``battery.runtime``: from the charge down to battery.charge.low (where NUT shuts down), at the home's whole
  load (solar may fade, so it is not counted), from the pack's energy. Only when the proxy says that energy
  or how many Powerwalls there are (13.5 kWh each); otherwise no runtime at all rather than a guess.
- ``ups.load``: the home's load as a share of what the Powerwalls can deliver (the gateway's
  max_discharge_power, also written as ups.realpower.nominal); only when the proxy says it. Above 100 % means
  the grid carries part of the load and could not be replaced by the battery alone.
"""

from __future__ import annotations

from collections.abc import Mapping

from nutbridge.devices.powerwall.model import IDLE_WATTS, PowerwallInfo, PowerwallReading
from nutbridge.nut.variables import COMMON, P1, RUNTIME_CAP, W1, Inputs, Value, Var, identity_rows

# The rows read the Powerwall's own reading and info types: no downcast.
Powerwall = Inputs[PowerwallReading, PowerwallInfo]
Row = Var[PowerwallReading, PowerwallInfo]


def runtime(x: Powerwall) -> Value:
    """Seconds until battery.charge.low at the present load; 2 days at most; None without the pack's energy."""
    r, energy = x.reading, x.info.pack_energy
    if not energy or r.battery_charge is None or r.load_power is None:
        return None
    if r.load_power <= 0:
        return RUNTIME_CAP
    usable_wh = max(0.0, r.battery_charge - x.charge_low) / 100 * energy
    return min(RUNTIME_CAP, int(usable_wh / r.load_power * 3600))


def charger_status(x: Powerwall) -> Value:
    """battery.charger.status from the battery's power, which is known even where its current is not."""
    watts = x.reading.battery_power
    if watts is None:
        return None
    if watts > IDLE_WATTS:
        return "charging"
    return "discharging" if watts < -IDLE_WATTS else "resting"


def load_percent(x: Powerwall) -> Value:
    rated, watts = x.info.max_power, x.reading.load_power
    return None if not rated or watts is None else 100 * watts / rated


def description(i: PowerwallInfo) -> str:
    """device.description: the system, its size and the proxy it is read through."""
    parts = [f"{i.mfr} {i.model}"]
    if i.units:
        parts.append(f"{i.units} unit{'s' if i.units != 1 else ''}")
    if i.pack_energy:
        parts.append(f"{i.pack_energy / 1000:.1f} kWh")
    if not i.has_battery:
        parts.append("no battery (solar only)")
    if i.site_name:
        parts.append(f"site {i.site_name}")
    parts.append(f"via pyPowerwall {i.proxy}" if i.proxy else "via pyPowerwall")
    return ", ".join(parts)


OWN: Mapping[str, Row] = {
    "battery.runtime": Var(name="battery.runtime", value=runtime),
    "battery.charger.status": Var(name="battery.charger.status", value=charger_status),
}

TABLE: tuple[Row, ...] = (
    *(OWN.get(v.name, v) for v in COMMON),
    Var(name="battery.packs", value=lambda x: x.info.units),
    # --- input: the grid meter; output: the home ---
    Var(name="input.realpower", value=lambda x: x.reading.grid_power, fmt=W1),
    Var(name="output.realpower", value=lambda x: x.reading.load_power, fmt=W1),
    Var(name="ups.load", value=load_percent, fmt=P1),
    Var(name="ups.realpower.nominal", value=lambda x: x.info.max_power, fmt="{:g}"),
    # --- the system ---
    *identity_rows(description),
    # --- meters NUT has no names for ---
    Var(name="experimental.pv.realpower", value=lambda x: x.reading.pv_power, fmt=W1),
    Var(name="experimental.battery.realpower", value=lambda x: x.reading.battery_power, fmt=W1),
)
