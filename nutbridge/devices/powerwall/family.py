"""The Powerwall as the registry lists it: ``[source] kind = "powerwall"``. It has no fixtures of its own: TEST mode
shows the simulator instead."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from nutbridge.devices.base import Family, Opened, Opening
from nutbridge.devices.powerwall.config import PowerwallConfig
from nutbridge.devices.powerwall.model import PowerwallInfo, PowerwallReading
from nutbridge.devices.powerwall.nut import TABLE


@contextlib.asynccontextmanager
async def open_powerwall(config: PowerwallConfig, _opening: Opening) -> AsyncIterator[Opened]:
    """The pyPowerwall proxy at the configured URL."""
    from nutbridge.devices.powerwall.source import PowerwallSource

    async with PowerwallSource(config.url, timeout=config.timeout) as powerwall:
        yield powerwall, []


FAMILY = Family(
    kind=PowerwallConfig.kind,
    config=PowerwallConfig,
    open=open_powerwall,
    table=TABLE,
    reading=PowerwallReading,
    info=PowerwallInfo,
)
