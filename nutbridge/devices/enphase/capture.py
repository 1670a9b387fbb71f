"""The gateway's capture (its Family's hook, for ``nutbridge capture``): a poll as the daemon makes it, through
EnvoySource recorded, then the endpoints pyenphase and Home Assistant read besides, once each."""

from __future__ import annotations

from nutbridge.devices.capture import CaptureContext, Taken
from nutbridge.devices.enphase.config import EnvoyConfig
from nutbridge.devices.enphase.source import SOFTWARE, EnvoySource
from nutbridge.devices.enphase.token import TokenCache
from nutbridge.devices.recording import Recording

# Besides what EnvoySource reads in a poll: what pyenphase and Home Assistant read, so a maintainer can compare.
ENVOY_EXTRAS = (
    "/info",
    "/ivp/ensemble/inventory",
    "/ivp/ensemble/secctrl",
    "/ivp/ensemble/relay",
    "/ivp/ensemble/status",
    "/api/v1/production",
    "/production.json?details=1",
    "/ivp/meters",
    "/ivp/meters/readings",
    "/ivp/livedata/status",
)


class RecordingEnvoy(Recording, EnvoySource):
    """EnvoySource, recorded."""


async def take(envoy: EnvoyConfig, tokens: TokenCache, context: CaptureContext) -> Taken:
    """A poll as the daemon makes it (with the daemon's token cache, ``tokens``), then the extra endpoints once
    each (no token renewal for those: an endpoint this token may not read must not cost a cloud login)."""
    taken = Taken(envoy.kind)
    source = RecordingEnvoy(envoy.host, serial=envoy.serial or "", tokens=tokens, timeout=envoy.api_timeout,
                            meters=envoy.meters, load_kwh=envoy.load_kwh)  # fmt: skip
    source.answers = taken.answers
    async with source:
        await taken.attempt(source.read())
        token = await taken.attempt(tokens.get())
        if token is not None:
            context.redactor.add("secret", token)  # should a gateway ever echo it
            for path in ENVOY_EXTRAS:
                if path not in taken.answers:
                    await taken.attempt(source.request(path, headers={"Authorization": f"Bearer {token}"}))
        if source.info is not None:
            taken.firmware = source.info.firmware
    for path in ("/info.xml", "/info"):  # the poll may have failed before it read the firmware
        answer = taken.answers.get(path)
        found = SOFTWARE.search(answer.body.decode("utf-8", "replace")) if answer else None
        taken.firmware = taken.firmware or (found.group(1) if found else None)
    return taken
