"""The power state of one reading, whatever views it later: OL/OB, LB, CHRG/DISCHRG, ALARM. Pure, no I/O.

The domain's own words for what a UPS reports (NUT's ups.status is one view of them, nut/variables.py).

Rules (also in the README):
- A source that knows line power itself (``Reading.on_line``, an Envoy's grid relay) decides OL/OB.
- Otherwise OL while PV is present and the battery is not draining, OB when there is no PV or the battery
  drains. With hysteresis, so marginal PV with a battery current around zero does not flap: an OL system
  goes OB only when the battery drains more than ``OB_BELOW`` amperes (or PV is gone), and an OB system
  goes back OL only when PV charges it by more than ``OL_ABOVE``. Between the two it keeps its state.
- LB when battery.charge < battery.charge.low, or when the controller reports under-voltage itself.
- CHRG while the net battery current flows in, DISCHRG while it flows out (beyond ``IDLE_CURRENT``).
- ALARM when the device reports a fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from nutbridge.model import ChargeStage, Reading

DEFAULT_CHARGE_LOW = 20.0  # %: LB below this unless the port file sets battery.charge.low by hand
IDLE_CURRENT = 0.05  # A: below this the battery counts as idle; sensors read a few 10 mA of noise
OB_BELOW = -0.20  # A: an OL system goes OB when the battery drains more than this
OL_ABOVE = 0.05  # A: an OB system goes OL when PV charges the battery by more than this


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerState:
    """What ups.status says, as flags; the monitor hands the last one back for the hysteresis."""

    on_line: bool
    low: bool
    charging: bool
    discharging: bool
    alarm: bool

    def tokens(self) -> list[str]:
        """The ups.status words, in NUT's usual order."""
        words = ["OL" if self.on_line else "OB"]
        if self.low:
            words.append("LB")
        if self.charging:
            words.append("CHRG")
        elif self.discharging:
            words.append("DISCHRG")
        if self.alarm:
            words.append("ALARM")
        return words


def charging(r: Reading) -> bool:
    """True while current flows into the battery (or the charger says so when current is unknown)."""
    if r.battery_current is None:
        return r.charge_stage not in (None, ChargeStage.OFF)
    return r.battery_current > IDLE_CURRENT


def discharging(r: Reading) -> bool:
    """True while current flows out of the battery."""
    return r.battery_current is not None and r.battery_current < -IDLE_CURRENT


def on_line(r: Reading, previous: bool | None) -> bool:
    """The OL/OB decision, with hysteresis against the ``previous`` decision (None at start)."""
    if r.on_line is not None:
        return r.on_line
    if not (r.pv_power or 0) > 0:
        return False
    current = r.battery_current
    if current is None:
        return True
    if previous is None:
        return current >= -IDLE_CURRENT
    return current >= OB_BELOW if previous else current > OL_ABOVE


def power_state(r: Reading, *, charge_low: float, previous: PowerState | None) -> PowerState:
    """The status flags of one reading."""
    return PowerState(
        on_line=on_line(r, None if previous is None else previous.on_line),
        low=r.battery_low or (r.battery_charge is not None and r.battery_charge < charge_low),
        charging=charging(r),
        discharging=discharging(r),
        alarm=bool(r.faults),
    )


class PowerRule(Protocol):
    """How a family turns a reading into its power state (``power_state`` unless the family brings its own)."""

    def __call__(self, r: Reading, *, charge_low: float, previous: PowerState | None) -> PowerState: ...
