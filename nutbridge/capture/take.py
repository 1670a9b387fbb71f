"""Taking the device's answers, family by family: one connection to the source, made by the family's own source
class with its client recording every answer (HTTP answers by path, or a Tracer's register blocks), one poll as
the daemon makes it, and for a gateway the extra endpoints pyenphase and Home Assistant read. A source's error is
a problem to report, and what was taken before it stays.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from nutbridge.config import Config
from nutbridge.devices.enphase.config import EnvoyConfig
from nutbridge.devices.enphase.source import SOFTWARE, EnvoySource
from nutbridge.devices.http import HttpSource
from nutbridge.devices.modbus import ModbusTarget
from nutbridge.devices.modbus_map import Request, Table
from nutbridge.devices.powerwall.config import PowerwallConfig
from nutbridge.devices.powerwall.source import PowerwallSource
from nutbridge.devices.tracer.config import TracerConfig
from nutbridge.devices.tracer.source import TracerSource
from nutbridge.errors import SourceError
from nutbridge.redact import Redactor
from nutbridge.simulator.config import SimulatorConfig

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


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer as it came: its status, content type and body."""

    status: int
    content_type: str
    body: bytes


@dataclass
class Taken:
    """What one connection to the source gave: HTTP answers by path (with its query) or register blocks."""

    kind: str
    answers: dict[str, Answer] = field(default_factory=dict)
    registers: dict[tuple[Table, int], list[int]] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)  # what the source says about the device
    firmware: str | None = None
    problems: list[str] = field(default_factory=list)

    async def attempt(self, work: Awaitable[T]) -> T | None:
        """``work``'s result; a SourceError is a problem to report (the answers taken so far stay): None."""
        try:
            return await work
        except SourceError as exc:
            self.problems.append(str(exc))
            return None


class Recording(HttpSource):
    """An HTTP source whose client keeps a copy of every answer: the answers are exactly the source's own
    requests, made by its own code (token, renewal, timeouts), so the capture cannot drift from what it reads."""

    answers: dict[str, Answer]

    def make_client(self) -> httpx.AsyncClient:
        client = super().make_client()
        client.event_hooks["response"].append(self._keep)
        return client

    async def _keep(self, response: httpx.Response) -> None:
        await response.aread()  # inside the source's timeout: the hook runs within its GET
        path = response.request.url.raw_path.decode("ascii", "replace")
        self.answers[path] = Answer(response.status_code, response.headers.get("content-type", ""), response.content)


class RecordingEnvoy(Recording, EnvoySource):
    """EnvoySource, recorded."""


class RecordingPowerwall(Recording, PowerwallSource):
    """PowerwallSource, recorded."""


class RecordingTracer(TracerSource):
    """TracerSource keeping each register block it reads, at start-up and in the poll."""

    blocks: dict[tuple[Table, int], list[int]]

    async def _read(self, req: Request) -> list[int]:
        words = list(await super()._read(req))
        self.blocks[req.table, req.address] = words
        return words


async def take_envoy(config: Config, envoy: EnvoyConfig, redactor: Redactor) -> Taken:
    """A poll as the daemon makes it, then the extra endpoints once each (no token renewal for those: an
    endpoint this token may not read must not cost a cloud login)."""
    from nutbridge.daemon import state_dir
    from nutbridge.devices.enphase.family import tokens as token_cache

    taken = Taken("envoy")
    tokens = token_cache(envoy, state_dir(config))
    source = RecordingEnvoy(envoy.host, serial=envoy.serial or "", tokens=tokens, timeout=envoy.api_timeout,
                            meters=envoy.meters, load_kwh=envoy.load_kwh)  # fmt: skip
    source.answers = taken.answers
    async with source:
        await taken.attempt(source.read())
        token = await taken.attempt(tokens.get())
        if token is not None:
            redactor.add("secret", token)  # should a gateway ever echo it
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


async def take_powerwall(powerwall: PowerwallConfig) -> Taken:
    """A poll as the daemon makes it: the routes read once per connection, then the poll's."""
    taken = Taken("powerwall")
    source = RecordingPowerwall(powerwall.url, timeout=powerwall.timeout)
    source.answers = taken.answers
    async with source:
        await taken.attempt(source.read())
        if source.info is not None:
            taken.firmware = source.info.firmware
    return taken


async def take_tracer(kind: str, tracer: RecordingTracer) -> Taken:
    """A connection (rated data, battery settings, identification) and one poll, as the daemon makes them."""
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


async def take_simulator(sim: SimulatorConfig) -> Taken:
    """The built-in simulator, started as the daemon starts it, read through the real Tracer client."""
    from nutbridge.simulator.physics import Plant
    from nutbridge.simulator.server import SimulatedTracer

    now = time.localtime()
    seconds = sim.start if sim.start is not None else now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec
    async with SimulatedTracer(Plant(seconds=seconds), speed=sim.speed) as server:
        port = await server.start_tcp("127.0.0.1", 0)
        target = ModbusTarget(scheme="tcp", host="127.0.0.1", port=port)
        return await take_tracer("simulator", RecordingTracer(target, timeout=sim.timeout))


async def take(config: Config, redactor: Redactor) -> Taken:
    """Connect to the configured source once and take its answers."""
    source = config.source
    if isinstance(source, EnvoyConfig):
        return await take_envoy(config, source, redactor)
    if isinstance(source, PowerwallConfig):
        return await take_powerwall(source)
    if isinstance(source, TracerConfig) and source.url is not None:
        return await take_tracer(
            "tracer", RecordingTracer(source.url, device_id=source.device_id, timeout=source.timeout)
        )
    return await take_simulator(source if isinstance(source, SimulatorConfig) else SimulatorConfig())
