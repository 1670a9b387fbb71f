"""What the monitor asks of a source, whatever its device family: the contract between devices/ and monitor.py,
kept here so a source (and TEST mode's loop around any) needs nothing from the monitor above it. A source knows
no NUT: its family's NUT table is the registry's business (registry.py)."""

from __future__ import annotations

from typing import Protocol, Self

from nutbridge.model import DeviceInfo, Reading


class Source(Protocol):
    """A device, used as an async context manager (``async with``; ``aclose`` on exit, since httpx and aiohttp
    clients close asynchronously). ``read`` (re)connects as needed and returns one Reading or raises
    SourceError; ``reset`` drops the link so the next read starts clean."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def aclose(self) -> None: ...

    @property
    def info(self) -> DeviceInfo | None:
        """What the device said about itself when it last connected."""

    @property
    def timeout(self) -> float:
        """Seconds one attempt may take."""

    async def read(self) -> Reading: ...

    async def reset(self) -> None: ...
