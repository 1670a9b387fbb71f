"""A minimal stand-in for ``nutbridge.nut.driver_socket.DriverSocket`` (written in another branch, H9), with
its constructor's signature, so nutbridge-driver's tests can start the whole driver before both land. It answers
PING with PONG and DUMPALL with the static and polled variables, and nothing else; it is used only where the
real module cannot be imported (standin_site/sitecustomize.py), so once the real one lands the tests run on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from nutbridge.sinks import Wants


class DriverSocket:
    """The socket upsd connects to: listens at ``path`` while entered, removed at the end."""

    wants: ClassVar[Wants] = Wants.NEWEST

    def __init__(
        self,
        path: Path,
        *,
        static: Mapping[str, str] = {},  # the real signature's, never mutated
        commands: Mapping[str, Callable[[str | None], Awaitable[int]]] = {},
        settable: Mapping[str, Callable[[str], Awaitable[int]]] = {},
    ) -> None:
        self.path = path
        self.values: dict[str, str] = dict(static)
        self.server: asyncio.Server | None = None

    def __str__(self) -> str:
        return f"driver socket {self.path} (test stand-in)"

    async def __aenter__(self) -> DriverSocket:
        self.path.unlink(missing_ok=True)
        self.server = await asyncio.start_unix_server(self.serve, path=str(self.path))
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.server is not None:
            self.server.close()
        self.path.unlink(missing_ok=True)

    async def update(self, snapshot: Any) -> None:
        for name, value in snapshot.variables.items():
            if value is None:
                self.values.pop(name, None)
            else:
                self.values[name] = value

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while line := await reader.readline():
                word = line.decode(errors="replace").strip()
                if word == "PING":
                    writer.write(b"PONG\n")
                elif word == "DUMPALL":
                    for name, value in self.values.items():
                        writer.write(f'SETINFO {name} "{value}"\n'.encode())
                    writer.write(b"DUMPDONE\n")
                await writer.drain()
        writer.close()
