"""``[source] kind = "simulator"``: how fast the simulated day runs and where it starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from nutbridge.config_keys import _clock_time, _seconds_of_day, key, seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorConfig:
    """``[source] kind = "simulator"``: the built-in simulated Tracer, reached over loopback Modbus TCP."""

    kind: ClassVar[str] = "simulator"
    speed: float = key(1.0, types=(int, float), check=lambda v: 0.1 <= v <= 10_000, allowed="0.1-10000 (× real time)")
    start: float | None = key(types=str, check=_clock_time, convert=_seconds_of_day,
                              allowed="the simulated time of day to start at, HH:MM")  # fmt: skip
    timeout: float = key(1.0, **seconds(0.05, 30))
