"""Taking the device's answers: the configured source's family (devices/registry.py) makes one connection with
its own capture hook (``Family.capture``, in the family's folder: its source with every answer recorded, one poll
as the daemon makes it). A family without a hook is refused, never captured as another. A source's error is a
problem to report, and what was taken before it stays (devices/capture.py's Taken).
"""

from __future__ import annotations

from nutbridge.config import Config
from nutbridge.devices import registry
from nutbridge.devices.base import NO_SOURCE
from nutbridge.devices.capture import CaptureContext, Taken
from nutbridge.errors import NutbridgeError
from nutbridge.redact import Redactor


class CaptureError(NutbridgeError):
    """The configured source cannot be captured: its family has no capture hook."""


async def take(config: Config, redactor: Redactor) -> Taken:
    """Connect to the configured source once, through its family's capture hook, and take its answers."""
    from nutbridge.daemon import state_dir  # where the daemon keeps a family's state (a gateway's token cache)

    section = config.source
    if section is None:  # config.with_overrides refuses it first
        raise CaptureError(NO_SOURCE)
    hook = registry.family(section.kind).capture
    if hook is None:
        raise CaptureError(f"a {section.kind!r} source cannot be captured: its device family has no capture hook")
    return await hook(section, CaptureContext(state_dir=state_dir(config), redactor=redactor))
