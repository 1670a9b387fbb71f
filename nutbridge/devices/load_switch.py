"""The one path to a source's load output: the sidecar's ``/control/load`` and NUT's ``upscmd load.off|load.on``
both switch it through a LoadSwitch, so each change is read, made and logged the same way.

Two locks, one inside the other: the source's own exchange lock (TracerSource's) keeps every coil exchange off a
poll's Modbus exchange; the switch's lock keeps two callers (the API and upscmd at once) from interleaving their
read-before and their write, so each audit line says what that caller changed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger("nutbridge.server.control")  # the audit lines keep the logger they always had


class LoadOutput(Protocol):
    """A source that can switch its load (a Tracer, the simulator): ``on`` given switches it, then it is read back."""

    async def load_output(self, on: bool | None = None) -> bool: ...


class LoadSwitch:
    """A source's load output, read and switched one caller at a time."""

    def __init__(self, output: LoadOutput) -> None:
        self.output = output
        self._lock = asyncio.Lock()

    @classmethod
    def of(cls, source: object) -> LoadSwitch | None:
        """The switch of ``source`` when it can switch a load, else None (an Envoy, a Powerwall)."""
        if callable(getattr(source, "load_output", None)):
            return cls(source)  # type: ignore[arg-type]  # it has the method LoadOutput names
        return None

    async def read(self) -> bool:
        """Whether the load is on now; raises SourceError."""
        async with self._lock:
            return await self.output.load_output()

    async def switch(self, on: bool, *, by: str) -> bool:
        """Switch the load on or off for ``by`` (who asked, for the audit line); the state read back after it.
        Raises SourceError."""
        async with self._lock:
            before = await self.output.load_output()
            now = await self.output.load_output(on)
        log.warning("load control: %s asked for the load %s; it was %s, it is %s", by, "on" if on else "off",
                    "on" if before else "off", "on" if now else "off")  # fmt: skip
        return now
