"""The simulator's capture (its Family's hook, for ``nutbridge capture``): the simulated Tracer started as the
daemon starts it, read through the real Tracer client, recorded as a Tracer's capture is."""

from __future__ import annotations

import time

from nutbridge.devices.capture import CaptureContext, Taken
from nutbridge.devices.modbus import ModbusTarget
from nutbridge.devices.tracer.capture import RecordingTracer, take_registers
from nutbridge.simulator.config import SimulatorConfig
from nutbridge.simulator.physics import Plant
from nutbridge.simulator.server import SimulatedTracer


async def take(sim: SimulatorConfig, _context: CaptureContext) -> Taken:
    """The built-in simulator on a loopback port, started where its section says (or now), one connection."""
    now = time.localtime()
    seconds = sim.start if sim.start is not None else now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec
    async with SimulatedTracer(Plant(seconds=seconds), speed=sim.speed) as server:
        port = await server.start_tcp("127.0.0.1", 0)
        target = ModbusTarget(scheme="tcp", host="127.0.0.1", port=port)
        return await take_registers(sim.kind, RecordingTracer(target, timeout=sim.timeout))
