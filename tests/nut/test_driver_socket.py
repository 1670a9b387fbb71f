"""The driver socket against the machine's real upsd (2.8.0 on Debian 12): ups.conf says ``driver = nutbridge``, the
test serves ``<statepath>/nutbridge-solar`` in-process with a DriverSocket fed by a Monitor over the simulated
Tracer, and checks what upsc, upscmd and upsrw see. Blocking NUT commands run in a thread, so the socket keeps
answering meanwhile; every wait is a bounded poll for a condition.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from nutbridge.devices.tracer.nut import TABLE
from nutbridge.devices.tracer.source import TracerSource
from nutbridge.monitor import Monitor
from nutbridge.nut.driver_socket import DriverSocket
from nutbridge.nut.driver_state import CmdStatus, SetStatus
from nutbridge.snapshot import Comms, Snapshot
from tests.helpers.monitor import nut_view
from tests.nut_stack import DriverSocketStack, kill_pid, read_pid, require_nut

pytestmark = pytest.mark.nut

require_nut()

TIMEOUT = 30.0  # for what should take a second or two; the machine may be busy
STALE = "Error: Data stale"
ODD = 'say "hi" #1 \\ done'  # a value parseconf must escape: quotes, a hash, a backslash

T = TypeVar("T")


async def until(probe: Callable[[], T], accept: Callable[[T], bool], what: str, stack: DriverSocketStack) -> T:
    """Run the blocking ``probe`` in a thread until ``accept`` likes its value."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        value = await asyncio.to_thread(probe)
        if accept(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {value!r}\n{stack.describe()}")
        await asyncio.sleep(0.1)


def upsc_all(stack: DriverSocketStack) -> dict[str, str]:
    """Every variable upsc lists (empty when it answers with an error)."""
    out = stack.upsc()
    if out.startswith("Error"):
        return {}
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


@pytest.fixture
def short_root() -> Iterator[Path]:
    """A short private folder: a Unix socket's path must fit in 107 bytes, which pytest's tmp_path may not."""
    root = Path(tempfile.mkdtemp(prefix="nb-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def first(source: TracerSource) -> Snapshot:
    """One real poll of the simulated Tracer, as the daemon's monitor makes it."""
    return await Monitor(source, interval=1.0, **nut_view(TABLE)).poll()


class Handlers:
    """Instant commands and settable variables that record what reached them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def command(self, name: str) -> Callable[[str | None], Awaitable[int]]:
        async def run(param: str | None) -> int:
            self.calls.append((name, param))
            return CmdStatus.HANDLED

        return run

    async def set_charge_low(self, value: str) -> int:
        self.calls.append(("battery.charge.low", value))
        return SetStatus.HANDLED


@pytest.fixture
async def rig(short_root: Path, first: Snapshot) -> AsyncIterator[tuple[DriverSocketStack, DriverSocket, Handlers]]:
    """upsd started on a stack whose driver is the in-process DriverSocket, which has had ``first``."""
    stack = DriverSocketStack(short_root)
    handlers = Handlers()
    static = {"driver.name": "nutbridge", "driver.version": "test", "driver.parameter.desc": ODD}
    commands = {name: handlers.command(name) for name in ("load.off", "load.on")}
    try:
        await asyncio.to_thread(stack.write_configs)
        async with DriverSocket(
            stack.state / "nutbridge-solar",
            static=static,
            commands=commands,
            settable={"battery.charge.low": handlers.set_charge_low},
        ) as driver:
            await driver.update(first)
            await asyncio.to_thread(stack.start_upsd)
            yield stack, driver, handlers
    finally:
        await asyncio.to_thread(stack.stop)


def next_of(snapshot: Snapshot, **changes: object) -> Snapshot:
    """The following poll: ``changes`` to its fields, its seq one on."""
    return dataclasses.replace(snapshot, **{"seq": snapshot.seq + 1, **changes})  # type: ignore[arg-type]


async def test_the_dump_and_each_change_reach_upsc(
    rig: tuple[DriverSocketStack, DriverSocket, Handlers], first: Snapshot
) -> None:
    stack, driver, _ = rig
    expected = {name: value for name, value in first.variables.items() if value is not None}
    seen = await until(lambda: upsc_all(stack), lambda got: "ups.status" in got, "the dump in upsc", stack)
    for name, value in expected.items():
        assert seen.get(name) == value, name
    assert seen["ups.status"] == "OL CHRG"  # a multi-word value, quoted on the wire
    assert seen["driver.parameter.desc"] == ODD  # escaped by us, unescaped by upsd
    assert seen["driver.name"] == "nutbridge"
    assert seen["driver.state"] == "quiet"  # polled, between polls (NUT 2.8.1+'s words; 2.8.0's upsd passes it on)

    later = next_of(first, variables={**first.variables, "battery.charge": "42", "ups.status": "OB DISCHRG"})
    await driver.update(later)
    changed = await until(lambda: upsc_all(stack), lambda got: got.get("battery.charge") == "42", "a change", stack)
    assert changed["ups.status"] == "OB DISCHRG"

    gone = next(name for name in expected if name.startswith("battery.") and name != "battery.charge")
    await driver.update(next_of(later, variables={**later.variables, gone: None}))
    await until(lambda: upsc_all(stack), lambda got: gone not in got, f"{gone} deleted", stack)


async def test_a_lost_device_makes_the_data_stale_and_a_good_poll_clears_it(
    rig: tuple[DriverSocketStack, DriverSocket, Handlers], first: Snapshot
) -> None:
    stack, driver, _ = rig
    await until(stack.status_words, lambda words: words == ["OL", "CHRG"], "data", stack)
    failing = next_of(first, comms=Comms.FAILING, variables={})
    await driver.update(failing)  # within the grace: nothing changes for NUT
    assert await asyncio.to_thread(stack.status_words) == ["OL", "CHRG"]
    await driver.update(next_of(failing, comms=Comms.LOST))
    await until(lambda: stack.upsc("ups.status"), lambda out: out == STALE, "Data stale", stack)
    await driver.update(next_of(first, seq=first.seq + 3))
    await until(stack.status_words, lambda words: words == ["OL", "CHRG"], "fresh data again", stack)


async def test_upsd_restarted_gets_a_new_full_dump(
    rig: tuple[DriverSocketStack, DriverSocket, Handlers], first: Snapshot
) -> None:
    stack, driver, _ = rig
    await until(stack.status_words, lambda words: words == ["OL", "CHRG"], "data", stack)
    pid = read_pid(stack.upsd_pidfile)
    assert pid is not None
    await asyncio.to_thread(kill_pid, pid)
    await until(lambda: driver.connections, lambda n: n == 0, "upsd's connection to close", stack)
    await driver.update(next_of(first, variables={**first.variables, "battery.charge": "13"}))
    await asyncio.to_thread(stack.start_upsd)
    seen = await until(lambda: upsc_all(stack), lambda got: got.get("battery.charge") == "13", "a new dump", stack)
    assert seen["ups.status"] == "OL CHRG" and seen["driver.parameter.desc"] == ODD


async def test_upscmd_and_upsrw_reach_their_handlers_with_tracking(
    rig: tuple[DriverSocketStack, DriverSocket, Handlers],
) -> None:
    stack, _, handlers = rig
    await until(stack.status_words, lambda words: words == ["OL", "CHRG"], "data", stack)
    listed = await asyncio.to_thread(stack.run, ["upscmd", "-l", stack.address])
    assert "load.off" in listed.stdout and "load.on" in listed.stdout
    done = await asyncio.to_thread(stack.admin, "upscmd", stack.address, "load.off")
    assert done.returncode == 0 and "SUCCESS" in done.stderr, done.stdout + done.stderr  # our TRACKING answer
    assert handlers.calls == [("load.off", None)]

    info = await asyncio.to_thread(stack.run, ["upsrw", stack.address])
    assert "battery.charge.low" in info.stdout, info.stdout + info.stderr
    done = await asyncio.to_thread(stack.admin, "upsrw", "-s", "battery.charge.low=30", stack.address)
    assert done.returncode == 0 and "SUCCESS" in done.stderr, done.stdout + done.stderr
    assert handlers.calls[-1] == ("battery.charge.low", "30")
    await until(lambda: stack.upsc("battery.charge.low"), lambda out: out == "30", "the new value", stack)


async def test_garbage_or_an_overlong_line_closes_only_that_client(
    rig: tuple[DriverSocketStack, DriverSocket, Handlers],
) -> None:
    stack, driver, _ = rig
    await until(stack.status_words, lambda words: words == ["OL", "CHRG"], "data", stack)
    for line in (b"\x00\xff\xfe binary\n", b'SETINFO "never closed\n', b"PING " + b"x" * 10_000 + b"\n"):
        reader, writer = await asyncio.open_unix_connection(driver.path)
        writer.write(line)
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # closed without an answer
        writer.close()
    reader, writer = await asyncio.open_unix_connection(driver.path)
    writer.write(b"NOBROADCAST\nPING\n")
    assert await asyncio.wait_for(reader.readline(), TIMEOUT) == b"PONG\n"
    writer.write(b"LOGOUT\n")
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"OK Goodbye\n"
    writer.close()
    assert await asyncio.to_thread(stack.status_words) == ["OL", "CHRG"]  # upsd's own connection lived on
