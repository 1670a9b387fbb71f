"""TEST mode, as enphase-monitor's: every poll moves the device to the next state of a loop, so a person can
watch upsd, upsmon and their scripts go through each one without waiting for a night or a cut cable.

    online → nocomms → online → onbatt → lowbatt → online → …

online: grid (or sun) present, battery full; nocomms: the device does not answer (the port file is renamed at
once, whatever the grace: seeing that state is the point); onbatt: no grid (or sun), 90 %; lowbatt: one below
battery.charge.low. Each source brings a driver that puts its device (fixtures, the simulator) in the state.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Self

from nutbridge.devices.base import Source
from nutbridge.model import DeviceInfo, Reading

log = logging.getLogger(__name__)


class State(enum.Enum):
    ONLINE = "online"
    NOCOMMS = "nocomms"
    ONLINE2 = "online2"
    ONBATT = "onbatt"
    LOWBATT = "lowbatt"

    @property
    def charge(self) -> float | None:
        """The state of charge the state shows (lowbatt's depends on battery.charge.low)."""
        return {State.ONBATT: 90.0, State.LOWBATT: None}.get(self, 100.0)


CYCLE = (State.ONLINE, State.NOCOMMS, State.ONLINE2, State.ONBATT, State.LOWBATT)

Driver = Callable[[State, float], Awaitable[None]]  # (state, its state of charge) → the device is in it


def low_charge(charge_low: float | None) -> float:
    """lowbatt's charge: one below battery.charge.low, as enphase-monitor (10 without one)."""
    return 10.0 if charge_low is None else float(int(charge_low * 100 - 100) // 100)


class StateCycle:
    """Wraps ``source``: before each read, ``drive`` puts the device in the next state of the loop."""

    def __init__(self, source: Source, drive: Driver, charge_low: Callable[[], float | None]) -> None:
        self.source = source
        self.drive = drive
        self.charge_low = charge_low
        self.state: State | None = None

    def __str__(self) -> str:
        return f"{self.source} in TEST mode"

    @property
    def info(self) -> DeviceInfo | None:
        return self.source.info

    @property
    def timeout(self) -> float:
        return self.source.timeout

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.source.aclose()

    async def reset(self) -> None:
        await self.source.reset()

    async def advance(self) -> None:
        """Move to the next state: once per poll (the monitor calls it), never per retry within a poll."""
        self.state = CYCLE[(CYCLE.index(self.state) + 1) % len(CYCLE)] if self.state else CYCLE[0]
        charge = self.state.charge
        if charge is None:
            charge = low_charge(self.charge_low())
        log.info("TEST mode: %s", self.state.value)
        await self.drive(self.state, charge)

    async def read(self) -> Reading:
        return await self.source.read()
