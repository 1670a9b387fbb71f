"""Sources for the monitor's tests (a fake one, one that swallows its cancellation) and one poll cycle to a sink."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from nutbridge.devices.tracer.nut import TABLE
from nutbridge.model import DeviceInfo, Reading
from nutbridge.monitor import Monitor
from nutbridge.nut.driver import PortFileSink
from nutbridge.nut.portfile import PortFile
from nutbridge.nut.variables import Var, charge_low, setting_names, view
from nutbridge.nut.version import Dialect, NutVersion
from nutbridge.snapshot import Snapshot

NUT_2_8_0 = Dialect(NutVersion(2, 8, 0))


def sink_for(port_file: Path, restart: tuple[str, ...] = ()) -> PortFileSink:
    pf = PortFile(port_file)
    pf.locate()
    return PortFileSink(pf, dialect=NUT_2_8_0, settings=setting_names(TABLE), restart_command=restart)


def nut_view(
    table: Sequence[Var[Any, Any]] = TABLE, settings: Callable[[], Mapping[str, str]] = dict
) -> dict[str, Any]:
    """What the daemon hands a Monitor for NUT: ``table``'s variables with the hand-set ``settings``, and
    battery.charge.low from them (``Monitor(source, **nut_view(TABLE, settings))``)."""
    return {"variables": view(table, settings), "charge_low": lambda: charge_low(settings())}


async def cycle(monitor: Monitor) -> Snapshot:
    """One poll, handed to every sink, waiting until each has handled it (and any driver restart is done)."""
    async with asyncio.timeout(10):  # a guard against hanging, not a timing assertion
        snapshot = await monitor.poll()
        monitor.publish(snapshot)
        for runner in monitor.runners:
            await runner.handled(snapshot.seq)
            if isinstance(runner.sink, PortFileSink):
                await runner.sink.drain()
    return snapshot


class FakeSource:
    """What every source is besides reading: an async context manager with an async close."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        return None


class SwallowingSource(FakeSource):
    """Python 3.11's asyncio.wait_for (used by pymodbus for every request) returns a reply that is ready when
    a cancellation lands in the same loop iteration, and drops the cancellation. This source answers that way."""

    info = DeviceInfo(mfr="test", model="swallower")
    timeout = 1.0

    def __init__(self) -> None:
        self.reads = 0
        self.on_read: list[object] = []

    def __str__(self) -> str:
        return "swallowing source"

    async def read(self) -> Reading:
        self.reads += 1
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Reading] = loop.create_future()
        loop.call_soon(reply.set_result, Reading(time=time.time(), battery_charge=50, pv_power=10.0))
        for hook in self.on_read:
            loop.call_soon(hook)  # type: ignore[arg-type]
        return await wait_for_311(reply, 1.0)

    async def reset(self) -> None:
        return None


async def wait_for_311(fut: asyncio.Future[Reading], limit: float) -> Reading:
    """The 3.11 behaviour, on any Python: a done future wins over a pending cancellation (``limit`` unused)."""
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        if fut.done():
            return fut.result()
        raise
