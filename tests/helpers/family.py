"""A device family defined only in the tests, to prove the recipe "add a device family": a wind-and-battery
station that answers one line over TCP (``READ`` → ``charge=73 wind=4.5``). Its own Reading subclass (the wind
speed), its ``[source]`` section (with a serial number a capture must not show), its NUT table, its source and
its capture hook (the one answer, recorded); ``register`` adds it to the registry at run time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar, Self

from nutbridge.config_keys import key, seconds
from nutbridge.devices import registry
from nutbridge.devices.base import Family, Opened, Opening
from nutbridge.devices.capture import Answer, CaptureContext, Taken
from nutbridge.errors import ProtocolError, SourceError
from nutbridge.model import DeviceInfo, Reading, measure
from nutbridge.nut.variables import COMMON, Inputs, Var, identity_rows

KIND = "windstation"


@dataclass(frozen=True, slots=True, kw_only=True)
class WindReading(Reading):
    """A Reading with the one field the shared Reading has not, and what it measures: a quantity no consumer
    knows, so Home Assistant shows it by its unit and /metrics names no unit."""

    wind_speed: float | None = field(default=None, metadata=measure("wind speed", "m/s"))


@dataclass(frozen=True, slots=True, kw_only=True)
class WindConfig:
    """``[source] kind = "windstation"``: where the station listens."""

    kind: ClassVar[str] = KIND
    port: int = key(0, types=int, check=lambda v: 1 <= v <= 65535, allowed="a TCP port on 127.0.0.1")
    serial: str | None = key(types=str, check=str.isalnum, redact="serial", allowed="the station's serial number")
    timeout: float = key(1.0, **seconds(0.05, 30))

    def missing(self, _test: bool) -> str | None:
        """Its port has no default: the daemon refuses to start without one."""
        return "the wind station needs source.port" if self.port == 0 else None


def wind(x: Inputs[WindReading, DeviceInfo]) -> float | None:
    return x.reading.wind_speed  # the family's own field, typed: no downcast


def description(i: DeviceInfo) -> str:
    return f"{i.mfr} {i.model} wind station"


TABLE: tuple[Var[WindReading, DeviceInfo], ...] = (
    *COMMON,
    Var(name="experimental.wind.speed", value=wind, fmt="{:.1f}"),
    *identity_rows(description),
)


class WindSource:
    """The station at 127.0.0.1:``port``: one connection per read."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self.info: DeviceInfo | None = None

    def __str__(self) -> str:
        return f"wind station at 127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        return None

    async def reset(self) -> None:
        self.info = None

    async def ask(self) -> bytes:
        """The station's one answer line, as it came."""
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError as exc:
            raise SourceError(f"{self}: {exc}") from exc
        try:
            writer.write(b"READ\n")
            return await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()

    async def read(self) -> WindReading:
        line = (await self.ask()).decode()
        try:
            fields = dict(part.split("=", 1) for part in line.split())
            charge, speed = float(fields["charge"]), float(fields["wind"])
        except (KeyError, ValueError) as exc:
            raise ProtocolError(f"{self}: {line!r} is no reading") from exc
        self.info = DeviceInfo(mfr="Test", model="Windy")
        return WindReading(time=time.time(), battery_charge=charge, wind_speed=speed, on_line=True)


@contextlib.asynccontextmanager
async def open_station(config: WindConfig, _opening: Opening) -> AsyncIterator[Opened]:
    async with WindSource(config.port, config.timeout) as source:
        yield source, []


class RecordingStation(WindSource):
    """The station keeping its answer in ``answers``, as an HTTP source's capture keeps its (status 200:
    it answered), under the request's name."""

    answers: dict[str, Answer]

    async def ask(self) -> bytes:
        line = await super().ask()
        self.answers["/READ"] = Answer(200, "text/plain", line)
        return line


async def capture_station(config: WindConfig, _context: CaptureContext) -> Taken:
    """``nutbridge capture``: one read, its answer recorded."""
    taken = Taken(KIND)
    source = RecordingStation(config.port, config.timeout)
    source.answers = taken.answers
    async with source:
        await taken.attempt(source.read())
    return taken


FAMILY = Family(
    kind=KIND,
    config=WindConfig,
    open=open_station,
    table=TABLE,
    reading=WindReading,
    missing=WindConfig.missing,
    capture=capture_station,
)


@contextlib.contextmanager
def registered() -> Iterator[None]:
    """The family in the registry for the length of a test."""
    remove = registry.register(FAMILY)
    try:
        yield
    finally:
        remove()


@contextlib.asynccontextmanager
async def station(answer: Callable[[], bytes]) -> AsyncIterator[int]:
    """A station on loopback answering ``answer()`` to each READ; yields its port."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await reader.readline() == b"READ\n":
            writer.write(answer())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]
