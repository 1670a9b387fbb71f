"""The Tracer as the registry lists it: ``[source] kind = "tracer"``. It has no fixtures of its own: TEST mode shows
the simulator (a simulated Tracer) instead. Captured by capture.py."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from nutbridge.devices.base import Family, Opened, Opening
from nutbridge.devices.tracer.config import TracerConfig
from nutbridge.devices.tracer.nut import TABLE

if TYPE_CHECKING:
    from nutbridge.devices.capture import CaptureContext, Taken


@contextlib.asynccontextmanager
async def open_tracer(config: TracerConfig, _opening: Opening) -> AsyncIterator[Opened]:
    """The Tracer at the configured URL."""
    from nutbridge.devices.tracer.source import TracerSource  # pymodbus only where a Tracer is polled

    assert config.url is not None  # config.with_overrides refuses a tracer without a URL
    async with TracerSource(
        config.url, device_id=config.device_id, timeout=config.timeout, coalesce=config.coalesce
    ) as tracer:
        yield tracer, []


async def capture_tracer(config: TracerConfig, context: CaptureContext) -> Taken:
    """``nutbridge capture``: a connection and a poll, every register block recorded."""
    from nutbridge.devices.tracer.capture import take  # pymodbus only where a Tracer is captured

    return await take(config, context)


FAMILY = Family(
    kind=TracerConfig.kind,
    config=TracerConfig,
    open=open_tracer,
    table=TABLE,
    missing=TracerConfig.missing,
    capture=capture_tracer,
)
