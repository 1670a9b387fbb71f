"""What a device family is: the ``Source`` the monitor polls (the contract between devices/ and monitor.py, kept
here so a source, and TEST mode's loop around any, needs nothing from the monitor above it), its ``[source]``
section's shape, and the ``Family`` record the registry (registry.py) keeps for each. A source knows no NUT: its
family's NUT table is in the record; nor does it know ``nutbridge capture``: its family's capture hook is there
too (what a hook is handed and gives back: capture.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, Self, TypeVar

from nutbridge.model import DeviceInfo, Reading
from nutbridge.power import PowerRule, power_state

if TYPE_CHECKING:
    from nutbridge.devices.capture import CaptureContext, Taken
    from nutbridge.nut.variables import Var  # a type only: the config imports this module, not the NUT tables


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


class SourceConfig(Protocol):
    """A family's ``[source]`` section: a frozen dataclass whose fields declare their keys (config_keys.key)."""

    kind: ClassVar[str]  # what ``[source] kind`` names it

    @property
    def timeout(self) -> float:
        """Seconds one attempt may take."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Opening:
    """What opening a source may need besides its ``[source]`` section."""

    state_dir: Path  # where a family keeps state its section does not place (the port file's folder)
    test: bool = False  # TEST mode: the family's fixture device, through the state loop (testmode.py)
    fixtures: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))  # [test]'s answers
    demo: bool = False  # --demo: the simulator's fast day
    charge_low: Callable[[], float | None] = lambda: None  # battery.charge.low by hand: where TEST mode's lowbatt is
    # The power cycle's record of the controller's settings (nutbridge-<UPS>.controller): restored at the open
    # when it exists. None: the daemon does not know its UPS (run without one), nothing to restore.
    controller_record: Path | None = None


# What the daemon says when no source is configured (or a Tracer's has no URL): the default family's key and flags.
NO_SOURCE = "no source; set source.url, or pass --source URL or --simulate"


def nothing_missing(_section: object, _test: bool) -> str | None:
    """A section whose keys' defaults are enough to poll."""
    return None


# The source, and the background work it brings (the simulator's stdin commands), run by the daemon's TaskGroup.
Opened = tuple[Source, list[Coroutine[Any, Any, None]]]
C = TypeVar("C")


@dataclass(frozen=True, slots=True, kw_only=True)
class Family(Generic[C]):
    """One device family, as the registry lists it: everything the daemon and the config need of it."""

    kind: str  # ``[source] kind``
    config: type[C]  # its ``[source]`` section
    open: Callable[[C, Opening], AbstractAsyncContextManager[Opened]]  # TEST mode included, where ``test_mode``
    table: Sequence[Var[Any, Any]]  # its NUT table, over its own reading and info types
    reading: type[Reading] = Reading  # what its source's ``read`` returns
    info: type[DeviceInfo] = DeviceInfo  # what its source's ``info`` holds
    test_mode: bool = False  # False: it has no fixtures of its own, and TEST mode shows the simulator instead
    power: PowerRule = power_state  # its power state rule; the shared one unless its device needs its own
    # What a daemon needs that its section leaves unset (the error's text after the file's name), or None; the
    # second argument is TEST mode, which polls no real device.
    missing: Callable[[C, bool], str | None] = nothing_missing
    # ``nutbridge capture``: one connection to the device with every answer recorded (its source, recorded, in
    # the family's capture.py); None: the command says it cannot capture this kind, and captures nothing else.
    capture: Callable[[C, CaptureContext], Awaitable[Taken]] | None = None
