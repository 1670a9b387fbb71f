"""The Tracer's capture (its Family's hook, for ``nutbridge capture``): a connection (rated data, battery
settings, identification) and one poll, as the daemon makes them, through TracerSource keeping each register
block it reads. The simulator's capture (simulator/capture.py) reads its simulated Tracer the same way."""

from __future__ import annotations

from collections.abc import Sequence

from nutbridge.devices.capture import CaptureContext, Taken
from nutbridge.devices.modbus_map import Request, Table
from nutbridge.devices.tracer.config import TracerConfig
from nutbridge.devices.tracer.source import TracerSource


class RecordingTracer(TracerSource):
    """TracerSource keeping each register block it reads, at start-up and in the poll."""

    blocks: dict[tuple[Table, int], list[int]]

    async def _read(self, req: Request) -> Sequence[int]:
        words = list(await super()._read(req))
        self.blocks[req.table, req.address] = words
        return words


async def take_registers(kind: str, tracer: RecordingTracer) -> Taken:
    """A connection and one poll of ``tracer``, its blocks and what it says about itself."""
    taken = Taken(kind)
    tracer.blocks = taken.registers
    async with tracer:
        await taken.attempt(tracer.read())
        info = tracer.info  # before the close, which forgets it
    taken.device = {"device_id": tracer.device_id}
    if info is not None:
        taken.device |= {"mfr": info.mfr, "model": info.model, "firmware": info.firmware}
        taken.firmware = info.firmware
    return taken


async def take(tracer: TracerConfig, _context: CaptureContext) -> Taken:
    """The Tracer at the configured URL."""
    assert tracer.url is not None  # config.with_overrides refuses a tracer without a URL
    return await take_registers(
        tracer.kind,
        RecordingTracer(tracer.url, device_id=tracer.device_id, timeout=tracer.timeout, coalesce=tracer.coalesce),
    )
