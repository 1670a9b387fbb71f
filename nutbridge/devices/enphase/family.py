"""The Enphase gateway as the registry lists it: ``[source] kind = "envoy"``, with its token cache; in TEST mode
answered from fixtures (testmode.py) through the state loop; captured by capture.py."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from nutbridge.devices.base import Family, Opened, Opening
from nutbridge.devices.enphase.config import EnvoyConfig
from nutbridge.devices.enphase.model import GatewayReading
from nutbridge.devices.enphase.nut import TABLE
from nutbridge.testmode import StateCycle

if TYPE_CHECKING:
    import httpx

    from nutbridge.devices.capture import CaptureContext, Taken
    from nutbridge.devices.enphase.token import TokenCache


def tokens(envoy: EnvoyConfig, state_dir: Path, *, transport: httpx.AsyncBaseTransport | None = None) -> TokenCache:
    """The gateway's token cache as the daemon keeps it (``nutbridge capture`` shares it): the configured file,
    else enphase.token in the configured state folder, else in ``state_dir``. ``transport``: TEST mode's
    fixtures."""
    from nutbridge.devices.enphase.token import TokenCache

    folder = envoy.state_dir or state_dir
    return TokenCache(
        envoy.token_file or folder / "enphase.token",
        serial=envoy.serial or "TEST",
        username=envoy.username or "test",
        password=envoy.password or "test",
        login_url=envoy.login_url,
        token_url=envoy.token_url,
        timeout=envoy.login_timeout,
        min_renew_interval=0.0 if transport else 900.0,
        transport=transport,
    )


@contextlib.asynccontextmanager
async def open_gateway(envoy: EnvoyConfig, opening: Opening) -> AsyncIterator[Opened]:
    """The gateway with its token cache; in TEST mode, answered from fixtures through the state loop."""
    from nutbridge.devices.enphase.source import EnvoySource

    serial = envoy.serial or "TEST"
    fixtures = None
    if opening.test:
        from nutbridge.devices.enphase.testmode import FixtureGateway

        fixtures = FixtureGateway(opening.fixtures, serial=serial, login_url=envoy.login_url,
                                  token_url=envoy.token_url)  # fmt: skip
    cache = tokens(envoy, opening.state_dir, transport=fixtures.transport if fixtures else None)
    source = EnvoySource(envoy.host, serial=serial, tokens=cache, timeout=envoy.api_timeout, meters=envoy.meters,
                         load_kwh=envoy.load_kwh, transport=fixtures.transport if fixtures else None)  # fmt: skip
    async with source:
        if fixtures is None:
            yield source, []
        else:
            yield StateCycle(source, fixtures.driver(cache), opening.charge_low), []


async def capture_gateway(envoy: EnvoyConfig, context: CaptureContext) -> Taken:
    """``nutbridge capture``: a poll and the extra endpoints, recorded, with the daemon's token cache."""
    from nutbridge.devices.enphase.capture import take  # the recording source only when capturing

    return await take(envoy, tokens(envoy, context.state_dir), context)


FAMILY = Family(
    kind=EnvoyConfig.kind,
    config=EnvoyConfig,
    open=open_gateway,
    table=TABLE,
    reading=GatewayReading,
    test_mode=True,
    missing=EnvoyConfig.missing,
    capture=capture_gateway,
)
