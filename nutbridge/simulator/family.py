"""The simulator as the registry lists it: ``[source] kind = "simulator"``, a simulated Tracer (so the Tracer's NUT
table). It is also what TEST mode shows for a family without fixtures of its own, and what ``--demo`` runs fast.
Captured by capture.py."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from nutbridge.devices.base import Family, Opened, Opening
from nutbridge.devices.tracer.nut import TABLE
from nutbridge.simulator.config import SimulatorConfig
from nutbridge.testmode import StateCycle

if TYPE_CHECKING:
    from nutbridge.devices.capture import CaptureContext, Taken

DEMO_SPEED = 600.0  # a simulated day in 2.4 minutes
DEMO_START = 7 * 3600.0


@contextlib.asynccontextmanager
async def open_simulator(config: SimulatorConfig, opening: Opening) -> AsyncIterator[Opened]:
    """The simulated Tracer with its stdin commands; in TEST mode, through the state loop."""
    # Imported here so a daemon on real hardware does not carry the pymodbus server in memory.
    from nutbridge.simulator.source import SimulatedSource

    async with SimulatedSource(
        speed=DEMO_SPEED if opening.demo else config.speed,
        timeout=config.timeout,
        start=DEMO_START if opening.demo else config.start,
    ) as simulated:
        if opening.test:
            yield StateCycle(simulated, simulated.enter, opening.charge_low), []
        else:
            yield simulated, [simulated.commands()]


async def capture_simulator(config: SimulatorConfig, context: CaptureContext) -> Taken:
    """``nutbridge capture``: the simulated Tracer on loopback, read and recorded as a Tracer is."""
    from nutbridge.simulator.capture import take  # the pymodbus server only when capturing

    return await take(config, context)


FAMILY = Family(
    kind=SimulatorConfig.kind,
    config=SimulatorConfig,
    open=open_simulator,
    table=TABLE,
    test_mode=True,
    capture=capture_simulator,
)
