"""A plausible day for a small off-grid system: sun curve, battery, constant load, and the controller between
them (its settings and its load terminal). Pure; no I/O.

12 V 100 Ah sealed lead-acid battery, 200 W of panels, a 15 W load (a Pi and a router) on the controller's load
terminal. The clock is the simulated time of day; ``advance`` integrates energy flows over the elapsed simulated
seconds, and the controller looks at its battery after every step (settle).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from nutbridge.model import ChargeStage
from nutbridge.simulator import battery
from nutbridge.simulator.load import LoadTerminal
from nutbridge.simulator.rules import Refusal
from nutbridge.simulator.settings import Settings

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
    load_on: bool = True  # coil 2, the manual load state (Modbus); the output is ``output_on``
    mode: Mode = Mode.DAY
    energy_in_today: float = 0.0  # Wh
    energy_out_today: float = 0.0
    energy_in_total: float = 85_000.0
    energy_out_total: float = 61_000.0
    settings: Settings = field(default_factory=Settings)  # non-volatile: kept through a restart
    terminal: LoadTerminal = field(default_factory=LoadTerminal)  # RAM: a restart starts a new one

    def __post_init__(self) -> None:
        self.terminal.boot(self.pv_voltage(), self.seconds, self.settings)
        self.settle()

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
            return min(available, self.load_on_w() + 0.5)
        return available

    def pv_voltage(self) -> float:
        """The panels' volts: near their working voltage whenever there is light."""
        return 18.0 + 2.0 * self.sun() if self.sun() > 0 else 0.4

    def battery_watts(self) -> float:
        """Net watts into the battery (negative while it discharges)."""
        return self.pv_power() - self.load_on_w()

    def output_on(self) -> bool:
        """The load terminal, as the controller drives it (load mode, low-voltage disconnect)."""
        return self.terminal.output(self.load_on, self.settings, self.seconds)

    def load_on_w(self) -> float:
        """Watts the load draws: nothing while the terminal is off, or from a flat battery."""
        return self.load_w if self.output_on() and self.soc > 0 else 0.0

    def battery_voltage(self) -> float:
        """Lead-acid voltage at the present charge and current (battery.py)."""
        return battery.terminal(self.soc, self.battery_watts() / NOMINAL_V)

    def battery_state(self) -> int:
        """0x3200 D3-D0: 3 low-voltage disconnect, 2 under-voltage warning, 0 normal."""
        return 3 if self.terminal.cut else 2 if self.terminal.warning else 0

    def settle(self) -> None:
        """The controller looks at its battery and panels: LVD/LVR, UVW/UVWR, the light signal."""
        self.terminal.sense(round(self.battery_voltage() * 100), self.pv_voltage(), self.seconds, self.settings)

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
        self.settle()

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
        self.settle()

    def set_mode(self, mode: Mode) -> None:
        """Switch mode; lowbatt also drains the battery to LOW_SOC."""
        self.mode = mode
        if mode is Mode.LOWBATT:
            self.soc = min(self.soc, LOW_SOC)
        self.settle()

    def set_charge(self, soc: float) -> None:
        """Put the battery at ``soc`` percent now."""
        self.soc = min(100.0, max(0.0, soc))
        self.settle()

    def set_resting_voltage(self, volts: float) -> None:
        """Put the battery at the charge whose resting (no current) voltage is ``volts``."""
        self.set_charge(battery.charge_at(volts))

    def write(self, address: int, values: Sequence[int]) -> Refusal | None:
        """A settings write (one Modbus request): stored if EPEver's rules allow it, and acted on at once."""
        refused = self.settings.write(address, values, self.seconds)
        if refused is None:
            self.settle()
        return refused

    def restart(self) -> None:
        """The controller restarts: settings and clock kept, coil 2 from 0x906A, the latches from the battery."""
        self.load_on = self.settings.manual_default_on
        self.terminal = LoadTerminal()
        self.terminal.boot(self.pv_voltage(), self.seconds, self.settings)
        self.settle()
