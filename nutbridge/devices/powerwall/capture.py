"""The Powerwall's capture (its Family's hook, for ``nutbridge capture``): a poll as the daemon makes it, through
PowerwallSource recorded: the routes read once per connection, then the poll's."""

from __future__ import annotations

from nutbridge.devices.capture import CaptureContext, Taken
from nutbridge.devices.powerwall.config import PowerwallConfig
from nutbridge.devices.powerwall.source import PowerwallSource
from nutbridge.devices.recording import Recording


class RecordingPowerwall(Recording, PowerwallSource):
    """PowerwallSource, recorded."""


async def take(powerwall: PowerwallConfig, _context: CaptureContext) -> Taken:
    """A poll as the daemon makes it: the routes read once per connection, then the poll's."""
    taken = Taken(powerwall.kind)
    source = RecordingPowerwall(powerwall.url, timeout=powerwall.timeout)
    source.answers = taken.answers
    async with source:
        await taken.attempt(source.read())
        if source.info is not None:
            taken.firmware = source.info.firmware
    return taken
