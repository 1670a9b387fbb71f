"""A reading to vary: a 12 V Tracer's at sunny noon, for the tests of the power state and of the NUT view."""

from __future__ import annotations

from nutbridge.model import ChargeStage, Reading


def reading(**kw: object) -> Reading:
    """A sunny-noon reading, changed by ``kw``."""
    base: dict[str, object] = {
        "time": 0.0,
        "battery_charge": 70,
        "battery_voltage": 13.1,
        "battery_current": 10.0,
        "pv_voltage": 19.0,
        "pv_power": 150.0,
        "load_voltage": 13.1,
        "load_current": 1.2,
        "load_power": 15.0,
        "charge_stage": ChargeStage.BOOST,
    }
    return Reading(**(base | kw))  # type: ignore[arg-type]
