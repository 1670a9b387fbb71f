"""The built-in simulator as a source: a real pymodbus server on loopback, read through the real Tracer client."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from nutbridge.devices.modbus import ModbusTarget
from nutbridge.devices.tracer.source import TracerSource
from nutbridge.model import DeviceInfo, Reading
from nutbridge.simulator.control import read_commands
from nutbridge.simulator.physics import Mode, Plant
from nutbridge.simulator.server import SimulatedTracer
from nutbridge.simulator.settings import Settings
from nutbridge.testmode import State

HANG_CHECK = 0.05  # seconds between looks at the mode while a read hangs


class SimulatedSource:
    """A simulated Tracer started on entry and stopped on exit; ``commands`` steers it from stdin."""

    def __init__(self, *, speed: float = 1.0, timeout: float = 1.0, start: float | None = None) -> None:
        now = time.localtime()
        seconds = start if start is not None else now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec
        midnight = dt.datetime.combine(dt.date.today(), dt.time())  # the controller's clock: today, local time
        self.plant = Plant(seconds=seconds, settings=Settings(rtc_base=midnight))
        self.timeout = timeout
        self._server = SimulatedTracer(self.plant, speed=speed)
        self._tracer: TracerSource | None = None

    def __str__(self) -> str:
        return f"simulated {self._tracer}" if self._tracer else "simulated Tracer (stopped)"

    @property
    def tracer(self) -> TracerSource:
        """The Modbus client that reads the simulator."""
        if self._tracer is None:
            raise RuntimeError("the simulator is not started; use 'async with'")
        return self._tracer

    @property
    def info(self) -> DeviceInfo | None:
        """What the simulated controller says about itself."""
        return self._tracer.info if self._tracer else None

    async def __aenter__(self) -> SimulatedSource:
        await self._server.__aenter__()
        port = await self._server.start_tcp("127.0.0.1", 0)
        self._tracer = TracerSource(ModbusTarget(scheme="tcp", host="127.0.0.1", port=port), timeout=self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client, then stop the simulated controller."""
        if self._tracer is not None:
            await self._tracer.aclose()
        await self._server.stop()

    async def read(self) -> Reading:
        """One poll of the simulated controller; in ``hang`` mode, not before the mode changes."""
        while self.plant.mode is Mode.HANG:
            try:
                await asyncio.sleep(HANG_CHECK)
            except asyncio.CancelledError:  # swallowed, as a buggy library would: the poll cannot end
                continue
        return await self.tracer.read()

    async def reset(self) -> None:
        """Drop the Modbus link."""
        await self.tracer.reset()

    async def load_output(self, on: bool | None = None) -> bool:
        """The simulated Tracer's load output, over Modbus as on the real one."""
        return await self.tracer.load_output(on)

    async def enter(self, state: State, charge: float) -> None:
        """TEST mode's driver: sun for the online states, silence for nocomms, night for the battery ones."""
        mode = {State.NOCOMMS: Mode.SILENT, State.ONBATT: Mode.NIGHT, State.LOWBATT: Mode.LOWBATT}.get(state, Mode.SUN)
        self.plant.set_mode(mode)
        if mode is not Mode.SILENT:
            self.plant.soc = charge

    async def commands(self) -> None:
        """Apply simulator commands typed on stdin until it closes."""
        await read_commands(self.plant)
