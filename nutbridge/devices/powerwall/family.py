"""The Powerwall as the registry lists it: ``[source] kind = "powerwall"``. It has no fixtures of its own: TEST mode
shows the simulator instead. Captured by capture.py."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from nutbridge.devices.base import Family, Opened, Opening
from nutbridge.devices.powerwall.config import PowerwallConfig
from nutbridge.devices.powerwall.model import PowerwallInfo, PowerwallReading
from nutbridge.devices.powerwall.nut import TABLE

if TYPE_CHECKING:
    from nutbridge.devices.capture import CaptureContext, Taken


@contextlib.asynccontextmanager
async def open_powerwall(config: PowerwallConfig, _opening: Opening) -> AsyncIterator[Opened]:
    """The pyPowerwall proxy at the configured URL."""
    from nutbridge.devices.powerwall.source import PowerwallSource

    async with PowerwallSource(config.url, timeout=config.timeout) as powerwall:
        yield powerwall, []


async def capture_powerwall(config: PowerwallConfig, context: CaptureContext) -> Taken:
    """``nutbridge capture``: a poll, every route recorded."""
    from nutbridge.devices.powerwall.capture import take  # the recording source only when capturing

    return await take(config, context)


FAMILY = Family(
    kind=PowerwallConfig.kind,
    config=PowerwallConfig,
    open=open_powerwall,
    table=TABLE,
    reading=PowerwallReading,
    info=PowerwallInfo,
    capture=capture_powerwall,
)
