"""A 12 V lead-acid battery's terminal voltage from its charge and current. Pure.

Resting voltage: 12.80 V full, 12.00 V at 10 % charge, then a knee down to 10.50 V empty, so a controller's
low-voltage disconnect (11.10 V by default) is reached near empty and its reconnect (12.60 V) only by charging
or near full. The current moves it: a sag while discharging (an internal resistance), a rise while charging
(capped, as a charger holds the voltage near its stage's setting).
"""

from __future__ import annotations

import itertools

# (charge %, resting volts), rising; linear in between.
CURVE = ((0.0, 10.50), (10.0, 12.00), (100.0, 12.80))
DISCHARGE_OHMS = 0.12  # 15 W at 12 V (1.25 A) sags 0.15 V
CHARGE_OHMS = 0.05
CHARGE_RISE_MAX = 0.6  # volts above rest while charging hard


def resting(soc: float) -> float:
    """Open-circuit volts at ``soc`` percent."""
    soc = min(100.0, max(0.0, soc))
    for (c0, v0), (c1, v1) in itertools.pairwise(CURVE):
        if soc <= c1:
            return v0 + (v1 - v0) * (soc - c0) / (c1 - c0)
    return CURVE[-1][1]


def charge_at(volts: float) -> float:
    """The charge whose resting voltage is ``volts`` (clamped to the curve)."""
    if volts <= CURVE[0][1]:
        return CURVE[0][0]
    for (c0, v0), (c1, v1) in itertools.pairwise(CURVE):
        if volts <= v1:
            return c0 + (c1 - c0) * (volts - v0) / (v1 - v0)
    return CURVE[-1][0]


def terminal(soc: float, amps: float) -> float:
    """Volts at the terminals with ``amps`` flowing in (negative: out)."""
    if amps < 0:
        return resting(soc) + amps * DISCHARGE_OHMS
    return resting(soc) + min(CHARGE_RISE_MAX, amps * CHARGE_OHMS)
