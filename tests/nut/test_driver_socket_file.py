"""The driver socket without upsd: its file (replaced atomically over a stale one, 0660, removed at the end), the
connection cap, and the TRACKING answers for commands it does not have or that fail."""

from __future__ import annotations

import asyncio
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nutbridge.nut import driver_socket
from nutbridge.nut.driver_socket import DriverSocket
from nutbridge.nut.driver_state import CmdStatus

TIMEOUT = 10.0  # a guard against hanging, not a timing assertion


@pytest.fixture
def path() -> Iterator[Path]:
    """A socket path short enough for sun_path."""
    with tempfile.TemporaryDirectory(prefix="nb-") as folder:
        yield Path(folder) / "nutbridge-solar"


async def ask(path: Path, request: bytes, lines: int) -> list[bytes]:
    """Send ``request`` on a new connection and read ``lines`` answer lines."""
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(request)
        return [await asyncio.wait_for(reader.readline(), TIMEOUT) for _ in range(lines)]
    finally:
        writer.close()


async def test_a_stale_socket_file_is_replaced_the_new_one_is_0660_and_removed_at_the_end(path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # what a crashed driver leaves: a socket file nobody listens on
    stale.close()
    async with DriverSocket(path, static={"driver.name": "nutbridge"}):
        assert stat.S_ISSOCK(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o660
        assert await ask(path, b"PING\n", 1) == [b"PONG\n"]
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary name left
    assert not path.exists()


async def test_getpid_and_dumpall(path: Path) -> None:
    async with DriverSocket(path, static={"driver.name": "nutbridge"}, commands={"load.off": stop}):
        got = await ask(path, b"GETPID\nDUMPALL\n", 5)
    assert got[0].startswith(b"PID ") and int(got[0].split()[1]) > 0
    assert got[1:] == [b"DATASTALE\n", b'SETINFO driver.name "nutbridge"\n', b"ADDCMD load.off\n", b"DUMPDONE\n"]


async def stop(param: str | None) -> int:
    return CmdStatus.HANDLED


async def broken(param: str | None) -> int:
    raise OSError("the coil did not answer")


async def test_unknown_and_failing_commands_answer_nuts_codes(path: Path) -> None:
    async with DriverSocket(path, commands={"load.off": broken}):
        assert await ask(path, b"INSTCMD load.on TRACKING a1\n", 1) == [b"TRACKING a1 1\n"]  # STAT_INSTCMD_UNKNOWN
        assert await ask(path, b"INSTCMD load.off 5 TRACKING a2\n", 1) == [b"TRACKING a2 3\n"]  # STAT_INSTCMD_FAILED
        assert await ask(path, b'SET ups.id "x" TRACKING a3\n', 1) == [b"TRACKING a3 1\n"]  # STAT_SET_UNKNOWN


async def test_past_the_cap_a_new_connection_is_closed_and_the_others_keep_working(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(driver_socket, "MAX_CONNECTIONS", 2)
    async with DriverSocket(path) as sock:
        held = [await asyncio.open_unix_connection(path) for _ in range(2)]
        for reader, writer in held:
            writer.write(b"PING\n")
            assert await asyncio.wait_for(reader.readline(), TIMEOUT) == b"PONG\n"
        assert sock.connections == 2
        reader, writer = await asyncio.open_unix_connection(path)
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        writer.close()
        held[0][1].write(b"PING\n")
        assert await asyncio.wait_for(held[0][0].readline(), TIMEOUT) == b"PONG\n"
        for _, writer in held:
            writer.close()
