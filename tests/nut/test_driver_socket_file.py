"""The driver socket without upsd: its file (replaced atomically over a stale one, 0660, removed at the end), the
connection cap, and the TRACKING answers for commands it does not have or that fail."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nutbridge.devices.tracer.nut import TABLE
from nutbridge.devices.tracer.source import TracerSource
from nutbridge.monitor import Monitor
from nutbridge.nut import driver_socket
from nutbridge.nut.driver_socket import DriverSocket
from nutbridge.nut.driver_state import CmdStatus
from nutbridge.snapshot import Comms, Snapshot
from tests.helpers.monitor import nut_view

TIMEOUT = 10.0  # a guard against hanging, not a timing assertion


@pytest.fixture
def path() -> Iterator[Path]:
    """A socket path short enough for sun_path."""
    with tempfile.TemporaryDirectory(prefix="nb-") as folder:
        yield Path(folder) / "nutbridge-solar"


@pytest.fixture
async def snapshot(source: TracerSource) -> Snapshot:
    """One real poll of the simulated Tracer, as the daemon's monitor makes it."""
    return await Monitor(source, interval=1.0, **nut_view(TABLE)).poll()


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
        got = await ask(path, b"GETPID\nDUMPALL\n", 6)
    assert got[0].startswith(b"PID ") and int(got[0].split()[1]) > 0
    assert got[1:] == [b"DATASTALE\n", b'SETINFO driver.name "nutbridge"\n', b'SETINFO driver.state "init.info"\n',
                       b"ADDCMD load.off\n", b"DUMPDONE\n"]  # fmt: skip


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


async def test_driver_state_follows_the_device_as_nuts_drivers_say_it(path: Path, snapshot: Snapshot) -> None:
    """NUT 2.8.1's main.c: init.* until the first update, quiet between polls, reconnect.trying while the device is
    lost, cleanup.exit as the driver ends; each change broadcast once, a dump gives the present one."""
    lost = dataclasses.replace(snapshot, seq=snapshot.seq + 1, comms=Comms.LOST, variables={})
    async with DriverSocket(path, static={"driver.name": "nutbridge"}) as driver:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"DUMPALL\n")
        dump = await read_until(reader, b"DUMPDONE\n")
        assert b'SETINFO driver.state "init.info"\n' in dump and dump[0] == b"DATASTALE\n"
        await driver.update(snapshot)
        polled = await read_until(reader, b"DATAOK\n")
        assert polled.count(b'SETINFO driver.state "quiet"\n') == 1
        await driver.update(snapshot)  # nothing changed: nothing sent
        await driver.update(lost)
        assert await read_until(reader, b"DATASTALE\n") == [
            b'SETINFO driver.state "reconnect.trying"\n',
            b"DATASTALE\n",
        ]
        await driver.update(dataclasses.replace(snapshot, seq=snapshot.seq + 2))
        assert await read_until(reader, b"DATAOK\n") == [b'SETINFO driver.state "quiet"\n', b"DATAOK\n"]
    assert await read_until(reader, b"") == [b'SETINFO driver.state "cleanup.exit"\n']  # then the end
    writer.close()


async def test_no_driver_state_for_a_nut_older_than_2_8_1(path: Path, snapshot: Snapshot) -> None:
    async with DriverSocket(path, static={"driver.name": "nutbridge"}, states=False) as driver:
        await driver.update(snapshot)
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"DUMPALL\n")
        dump = await read_until(reader, b"DUMPDONE\n")
        writer.close()
    assert b"DATAOK\n" in dump and not any(b"driver.state" in line for line in dump)


async def read_until(reader: asyncio.StreamReader, last: bytes) -> list[bytes]:
    """Lines up to and with ``last`` (b"": up to the end of the stream, the empty read not included)."""
    lines: list[bytes] = []
    while True:
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        if line == b"" and last:
            raise AssertionError(f"the stream ended before {last!r}; got {lines}")
        if line == b"":
            return lines
        lines.append(line)
        if line == last:
            return lines
