"""The Tracer as the registry lists it: ``[source] kind = "tracer"``. It has no fixtures of its own: TEST mode shows
the simulator (a simulated Tracer) instead. Captured by capture.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from nutbridge.devices.base import Family, Opened, Opening
from nutbridge.devices.tracer.config import TracerConfig
from nutbridge.devices.tracer.nut import TABLE

if TYPE_CHECKING:
    from nutbridge.devices.capture import CaptureContext, Taken
    from nutbridge.devices.tracer.source import TracerSource


log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def open_tracer(config: TracerConfig, opening: Opening) -> AsyncIterator[Opened]:
    """The Tracer at the configured URL; a power cycle's left-over record restored before the first poll."""
    from nutbridge.devices.tracer.source import TracerSource  # pymodbus only where a Tracer is polled

    assert config.url is not None  # config.with_overrides refuses a tracer without a URL
    async with TracerSource(
        config.url, device_id=config.device_id, timeout=config.timeout, coalesce=config.coalesce
    ) as tracer:
        if opening.controller_record is not None and opening.controller_record.exists():
            await restore_at_start(tracer, opening.controller_record)
        yield tracer, []


async def restore_at_start(tracer: TracerSource, record: Path) -> None:
    """The settings a power cycle changed, put back; a failure is logged loudly and the daemon polls on (LB
    follows the controller's live disconnect, so a raised one makes the host shut down early, not be cut)."""
    from nutbridge.devices.tracer.cycle import restore
    from nutbridge.errors import NutbridgeError

    try:
        async with asyncio.timeout(10 * tracer.timeout + 5), tracer.settings_link() as link:
            done = await restore(link, record)
    except (NutbridgeError, TimeoutError) as exc:
        log.error("the power cycle's settings are NOT restored on %s: %s; `nutbridge killpower UPS --restore` "
                  "tries again", tracer, exc or "no answer in time")  # fmt: skip
        return
    finally:
        tracer.close()  # the poll opens its own link and reads the rated data afresh
    if done is not None:
        log.warning("power cycle: restored %s on %s (%d non-volatile writes): %s", record, tracer, done.nv_writes,
                    "; ".join(done.lines()) or "nothing differed")  # fmt: skip


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
