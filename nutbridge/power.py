"""The power state of one reading, whatever views it later: OL/OB, LB, CHRG/DISCHRG, ALARM. Pure, no I/O.

The domain's own words for what a UPS reports (NUT's ups.status is one view of them, nut/variables.py).

Rules (also in the README):
- A source that knows line power itself (``Reading.on_line``, an Envoy's grid relay) decides OL/OB.
- Otherwise OL while PV is present and the battery is not draining, OB when there is no PV or the battery
  drains. With hysteresis, so marginal PV with a battery current around zero does not flap: an OL system
  goes OB only when the battery drains more than ``OB_BELOW`` amperes (or PV is gone), and an OB system
  goes back OL only when PV charges it by more than ``OL_ABOVE``. Between the two it keeps its state.
- LB when battery.charge < battery.charge.low, or when the controller reports under-voltage itself, or when
  the battery is close enough to the device's own low-voltage disconnect (``DeviceInfo.battery_voltage_disconnect``,
  where a charge controller cuts its load terminal) that the host could not finish its shutdown first at the
  present drain: ``LowVoltage`` says how close (README: docs/nut.md, "Before the controller cuts").
- With a sunrise reserve (``[power] sunrise_reserve``, off by default), LB also while on battery and
  discharging when the expected charge at the next sunrise (outlook.py) is below the reserve: the host shuts down
  with the reserve left for the morning boot. Once raised it holds until the power is back (OL) or the expected
  charge is ``RESERVE_CLEAR`` points above the reserve, so it never flaps. It only ever adds to the LB above.
- CHRG while the net battery current flows in, DISCHRG while it flows out (beyond ``IDLE_CURRENT``).
- ALARM when the device reports a fault.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from nutbridge.model import ChargeStage, DeviceInfo, Reading

DEFAULT_CHARGE_LOW = 20.0  # %: LB below this unless the port file sets battery.charge.low by hand
IDLE_CURRENT = 0.05  # A: below this the battery counts as idle; sensors read a few 10 mA of noise
OB_BELOW = -0.20  # A: an OL system goes OB when the battery drains more than this
OL_ABOVE = 0.05  # A: an OB system goes OL when PV charges the battery by more than this
RESERVE_CLEAR = 10.0  # points: the reserve's LB clears on battery only when sunrise's charge is this far above it


# Near empty, a 12 V lead-acid battery under a light load falls from about 11.9 V at 20 % to the 11.1 V of EPEver's
# default disconnect at 0 %: some 0.04 V for each 1 % of its capacity drawn. The drop a shutdown's drain causes.
VOLTS_PER_PERCENT_12V = 0.04
NOMINAL_12V = 12.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LowVoltage:
    """How close to the device's low-voltage disconnect LB is raised ([power] in the config).

    LB when the battery voltage is at or below the disconnect + ``margin`` (volts for each 12 V of the battery's
    nominal voltage: 0.3 V on 12 V, 0.6 V on 24 V) + what ``shutdown_seconds`` at the present net drain would
    take off it (VOLTS_PER_PERCENT_12V for each percent of the capacity drawn). It stays until the voltage is
    ``margin`` / 3 above that again, so a battery resting back up under the threshold does not flap."""

    margin: float = 0.3
    shutdown_seconds: float = 180.0

    def threshold(self, r: Reading, info: DeviceInfo) -> float | None:
        """The voltage at or below which LB is raised now; None when the device has no disconnect to guard."""
        disconnect = info.battery_voltage_disconnect
        if disconnect is None:
            return None
        scale = (info.battery_voltage_nominal or NOMINAL_12V) / NOMINAL_12V
        drain = max(0.0, -(r.battery_current or 0.0))  # amperes out of the battery, net of what PV gives
        drop = 0.0
        if drain and info.battery_capacity:
            drawn = 100.0 * drain * self.shutdown_seconds / 3600.0 / info.battery_capacity  # percent of capacity
            drop = VOLTS_PER_PERCENT_12V * scale * drawn
        return disconnect + self.margin * scale + drop

    def low(self, r: Reading, info: DeviceInfo, was_low: bool) -> bool:
        """Whether the voltage says LB now (``was_low``: it said so at the last poll)."""
        threshold = self.threshold(r, info)
        if threshold is None or r.battery_voltage is None:
            return False
        scale = (info.battery_voltage_nominal or NOMINAL_12V) / NOMINAL_12V
        return r.battery_voltage <= threshold + (self.margin * scale / 3 if was_low else 0.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerState:
    """What ups.status says, as flags; the monitor hands the last one back for the hysteresis."""

    on_line: bool
    low: bool
    charging: bool
    discharging: bool
    alarm: bool
    reserve: bool = False  # LB is (also) the sunrise reserve's: the charge would not last until sunrise

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


def drain_watts(r: Reading) -> float:
    """What the battery must carry: the load terminals, or the battery's own discharge power when larger
    (an inverter wired straight to the battery draws past the load terminals, which then read 0 W)."""
    battery = 0.0
    if discharging(r) and r.battery_current is not None and r.battery_voltage:
        battery = -r.battery_current * r.battery_voltage
    return max(r.load_power or 0.0, battery)


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


def power_state(
    r: Reading,
    *,
    charge_low: float,
    previous: PowerState | None,
    info: DeviceInfo | None = None,
    low_voltage: LowVoltage | None = None,
) -> PowerState:
    """The status flags of one reading; with ``info`` and ``low_voltage``, LB near the device's disconnect too."""
    near_disconnect = (
        info is not None
        and low_voltage is not None
        and low_voltage.low(r, info, was_low=previous is not None and previous.low)
    )
    return PowerState(
        on_line=on_line(r, None if previous is None else previous.on_line),
        low=r.battery_low or (r.battery_charge is not None and r.battery_charge < charge_low) or near_disconnect,
        charging=charging(r),
        discharging=discharging(r),
        alarm=bool(r.faults),
    )


class PowerRule(Protocol):
    """How a family turns a reading into its power state (``power_state`` unless the family brings its own)."""

    def __call__(
        self,
        r: Reading,
        *,
        charge_low: float,
        previous: PowerState | None,
        info: DeviceInfo | None = None,
        low_voltage: LowVoltage | None = None,
    ) -> PowerState: ...


def with_reserve(
    state: PowerState, previous: PowerState | None, sunrise_charge: float | None, reserve: float
) -> PowerState:
    """``state`` with the sunrise reserve's LB: raised on battery while discharging when ``sunrise_charge`` (the
    expected charge at sunrise, %, None when unknown) is below ``reserve``; held until OL or until it is
    ``RESERVE_CLEAR`` above. A charge.low LB in ``state`` stays whatever the reserve says."""
    if state.on_line:
        held = False
    elif previous is not None and previous.reserve:
        held = sunrise_charge is None or sunrise_charge < reserve + RESERVE_CLEAR
    else:
        held = state.discharging and sunrise_charge is not None and sunrise_charge < reserve
    if held == state.reserve:
        return state
    return replace(state, low=state.low or held, reserve=held)
