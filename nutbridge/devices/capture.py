"""What ``nutbridge capture`` asks of a device family and what it gets back: the context a family's capture hook
(``Family.capture``, in the family's folder) is handed, ``Taken`` (the answers of one connection: HTTP answers by
path, or register blocks) and ``Answer``. Light on purpose: a family's record names its hook without loading the
recording sources (``devices/recording.py``, an HTTP source that keeps its answers). The command
(``nutbridge/capture/``) redacts what was taken and writes the files."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nutbridge.devices.modbus_map import Table
from nutbridge.errors import SourceError
from nutbridge.redact import Redactor

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class CaptureContext:
    """What a capture hook may need besides its ``[source]`` section."""

    state_dir: Path  # where the daemon keeps state the section does not place (a gateway's token cache)
    redactor: Redactor  # what must not be written: a hook adds the secrets it meets on the way (a token)


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
