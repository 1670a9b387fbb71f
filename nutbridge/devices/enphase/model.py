"""What an Enphase IQ Gateway answers, as nutbridge keeps it: a Reading with the gateway's meters. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass

from nutbridge.model import Reading

MFR, MODEL = "Enphase Energy", "IQ Gateway"


@dataclass(frozen=True, slots=True)
class Meter:
    """One row of a meter report: watts, volt-amperes, volts, power factor, hertz (a missing value is 0)."""

    watts: float = 0.0
    va: float = 0.0
    volts: float = 0.0
    power_factor: float = 0.0
    hertz: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayReading(Reading):
    """A Reading with the gateway's meters: ``grid`` and ``load`` hold the cumulative row and then one row
    per line of a 3-phase site; ``storage`` the battery meter's cumulative row. None: not read (meters off).
    No field here declares a Measure: the meters are rows the JSON view shows whole, ``phases`` and ``load_kwh``
    describe the site (the wiring, the LOADKWH setting), so none is a sensor or a gauge of its own."""

    grid: tuple[Meter, ...] | None = None
    load: tuple[Meter, ...] | None = None
    storage: Meter | None = None
    phases: int | None = None
    load_kwh: float = 768.0
    charge_text: str | None = None  # the state of charge as the gateway wrote it
    battery: bool = True  # False: the gateway says the site has no battery (its charge of 0 means nothing)
