"""A plausible day for a small off-grid system: sun curve, battery, constant load. Pure; no I/O.

12 V 100 Ah sealed lead-acid battery, 200 W of panels, a 15 W load (a Pi and a router). The clock is
the simulated time of day; ``advance`` integrates energy flows over the elapsed simulated seconds.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from nutbridge.model import ChargeStage

CAPACITY_AH = 100.0
NOMINAL_V = 12.0
PANEL_W = 200.0
FLOAT_SOC = 98.0
LOW_SOC = 10.0  # where "lowbatt" puts the battery
STEP = 60.0  # integration step, simulated seconds


class Mode(enum.Enum):
    """What the simulator is told to do; see the README for the commands that set these."""

    DAY = "day"  # follow the simulated clock
    SUN = "sun"  # full sun now
    NIGHT = "night"  # no sun
    LOWBATT = "lowbatt"  # no sun, battery nearly empty
    FAULT = "fault"  # like DAY, and the controller reports a load short circuit
    SILENT = "silent"  # the server stops answering
    GARBAGE = "garbage"  # the server answers with noise
    # The server stops answering, and nutbridge's in-process simulated source hangs: its read never returns
    # and swallows every cancellation (a library bug such as pymodbus under Python 3.11's wait_for).
    HANG = "hang"


@dataclass(slots=True)
class Plant:
    """The simulated hardware's state."""

    seconds: float = 12 * 3600.0  # simulated time of day
    soc: float = 70.0
    load_w: float = 15.0
    load_on: bool = True  # the load output (coil 2), switched by Modbus
    mode: Mode = Mode.DAY
    energy_in_today: float = 0.0  # Wh
    energy_out_today: float = 0.0
    energy_in_total: float = 85_000.0
    energy_out_total: float = 61_000.0

    def sun(self) -> float:
        """Irradiance 0-1: a sine from 06:00 to 18:00, or what the mode forces."""
        if self.mode is Mode.SUN:
            return 1.0
        if self.mode in (Mode.NIGHT, Mode.LOWBATT):
            return 0.0
        hour = (self.seconds / 3600) % 24
        return max(0.0, math.sin(math.pi * (hour - 6) / 12))

    def pv_available(self) -> float:
        """Watts the panels could deliver now."""
        return PANEL_W * 0.9 * self.sun()

    def pv_power(self) -> float:
        """Watts the controller draws from the panels: all of it, unless the battery is full."""
        available = self.pv_available()
        if self.soc >= 100:
            return min(available, self.load_w + 0.5)
        return available

    def battery_watts(self) -> float:
        """Net watts into the battery (negative while it discharges)."""
        return self.pv_power() - self.load_on_w()

    def load_on_w(self) -> float:
        """The load, cut off at low-voltage disconnect like a real controller."""
        return 0.0 if self.soc <= 1 or not self.load_on else self.load_w

    def battery_voltage(self) -> float:
        """Lead-acid resting voltage plus a charge/discharge offset."""
        rest = 11.8 + 1.0 * self.soc / 100
        flow = self.battery_watts()
        return rest + (0.6 if flow > 1 else -0.15 if flow < -1 else 0.0)

    def stage(self) -> ChargeStage:
        """Charging stage as the controller would report it."""
        if self.pv_power() <= 0:
            return ChargeStage.OFF
        return ChargeStage.FLOAT if self.soc >= FLOAT_SOC else ChargeStage.BOOST

    def advance(self, dt: float) -> None:
        """Move the clock on by ``dt`` simulated seconds, integrating in steps of at most a minute."""
        while dt > 0:
            step = min(dt, STEP)
            self._step(step)
            dt -= step

    def _step(self, dt: float) -> None:
        day_before = int(self.seconds // 86400)
        self.seconds += dt
        if int(self.seconds // 86400) != day_before:  # midnight: today's counters restart, as on the device
            self.energy_in_today = self.energy_out_today = 0.0
        pv, load = self.pv_power() * dt / 3600, self.load_on_w() * dt / 3600
        self.energy_in_today += pv
        self.energy_in_total += pv
        self.energy_out_today += load
        self.energy_out_total += load
        self.soc = min(100.0, max(0.0, self.soc + (pv - load) / (CAPACITY_AH * NOMINAL_V) * 100))

    def set_mode(self, mode: Mode) -> None:
        """Switch mode; lowbatt also drains the battery to LOW_SOC."""
        self.mode = mode
        if mode is Mode.LOWBATT:
            self.soc = min(self.soc, LOW_SOC)
