"""What a Tesla Powerwall says through a pyPowerwall proxy, as nutbridge keeps it: a Reading with the grid and
battery meters, and DeviceInfo with the installation's size. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field

from nutbridge.model import DeviceInfo, Reading, measure

MFR = "Tesla"
MODEL = "Powerwall"
PACK_WH = 13_500.0  # one Powerwall 2 (or 3): 13.5 kWh
# W: below this the battery counts as idle. At rest the battery meter reads a few tens of watts either way,
# which at 240 V is more than power.IDLE_CURRENT and would make CHRG/DISCHRG flap.
IDLE_WATTS = 50.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerwallReading(Reading):
    """A Reading with the two meters the shared Reading has no fields for (watts; None: not measured)."""

    grid_power: float | None = field(default=None, metadata=measure("power", "W"))  # + importing, − exporting
    battery_power: float | None = field(default=None, metadata=measure("power", "W"))  # + charging, − discharging


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerwallInfo(DeviceInfo):
    """DeviceInfo with what the proxy says about the installation; None where it does not say."""

    units: int | None = None  # Powerwalls (the gateway's battery blocks)
    pack_energy: float | None = None  # Wh when full: the gateway's own figure, else units × 13.5 kWh
    max_power: float | None = None  # W the Powerwalls can deliver together
    site_name: str | None = None
    proxy: str | None = None  # pyPowerwall's version, e.g. "0.16.2 Proxy t97"
    has_battery: bool = True  # False only where the proxy says the site has no Powerwall (solar only)
