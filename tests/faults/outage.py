"""What a user sees of a fault, end to end through the monitor and a real port file.

``ride_out`` polls a source in good health, starts a fault, polls through it and ends it, and checks what NUT
and the log show: the poll fails with a SourceError in the source's own words; NUT keeps the last values for
the grace (the port file stays), then the file is renamed to ``-nocomms``; when the fault ends the next good
poll writes fresh values beside the hand-written lines and renames it back; each of those changes is logged
once, no warning twice (not once per attempt), and no log line carries a traceback or a secret. The grace and
the interval are short (0.5 s, 0.4 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Self

import pytest

from nutbridge.devices.base import Source
from nutbridge.devices.tracer.nut import TABLE
from nutbridge.errors import SourceError
from nutbridge.model import DeviceInfo, Reading
from nutbridge.monitor import Monitor
from nutbridge.nut.driver import PortFileSink
from nutbridge.nut.portfile_text import parse_values
from nutbridge.nut.variables import Var
from nutbridge.sinks import SinkRunner
from nutbridge.snapshot import Comms, Snapshot
from tests.helpers.monitor import cycle, nut_view, sink_for

GRACE = 0.5  # s without an answer before NUT is told
INTERVAL = 0.4  # s between polls; a poll may use 90 % of it, under the grace
TIMEOUT = 0.2  # s a source waits for one answer
HAND = "# written by hand\nbattery.charge.low: 25\n"  # the conftest port_file fixture's lines
GUARD = 30.0  # s: a guard against a hang, not a timing assertion

Step = Callable[[], object]  # a plain function or a coroutine function


class Attempts:
    """``source`` as the monitor sees it, keeping the error of every attempt: a poll reports only its last
    attempt's, which the poll's deadline may have cut short in the monitor's own words."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.errors: list[SourceError] = []

    def __str__(self) -> str:
        return str(self.source)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def aclose(self) -> None:
        return None

    @property
    def info(self) -> DeviceInfo | None:
        return self.source.info

    @property
    def timeout(self) -> float:
        return self.source.timeout

    async def read(self) -> Reading:
        try:
            return await self.source.read()
        except SourceError as exc:
            self.errors.append(exc)
            raise

    async def reset(self) -> None:
        await self.source.reset()


@contextlib.asynccontextmanager
async def watched(
    source: Source, port_file: Path, *, grace: float = GRACE, table: Sequence[Var[Any, Any]] = TABLE
) -> AsyncIterator[Monitor]:
    """A monitor of ``source`` (as ``Attempts``) writing ``port_file`` (old enough that the first write needs no
    wait) with its family's NUT ``table``."""
    os.utime(port_file, (0, 0))
    runner = SinkRunner(sink_for(port_file))
    task = asyncio.get_running_loop().create_task(runner.run())
    try:
        yield Monitor(Attempts(source), [runner], interval=INTERVAL, grace=grace, **nut_view(table))
    finally:
        runner.close()
        await task


async def step(action: Step) -> None:
    result = action()
    if inspect.isawaitable(result):
        await result


async def ride_out(
    monitor: Monitor,
    begin: Step,
    end: Step,
    *,
    error: str,
    caplog: pytest.LogCaptureFixture,
    secrets: Sequence[str] = (),
) -> list[Snapshot]:
    """Good health, the fault from ``begin`` until ``end``, good health again; the failed snapshots.

    ``error`` is a pattern the source's own message must match, in at least one attempt (a poll's snapshot and
    log line carry its last attempt's error, which may be the monitor's: cut short at the poll's deadline)."""
    caplog.set_level(logging.DEBUG)  # secrets stay out of every level
    caplog.set_level(logging.INFO, logger="pymodbus")  # not every frame
    sink = monitor.runners[0].sink
    assert isinstance(sink, PortFileSink)
    portfile = sink.portfile
    async with asyncio.timeout(GUARD):
        assert (await cycle(monitor)).comms is Comms.OK
        await step(begin)
        while (first := await cycle(monitor)).comms is Comms.OK:  # noqa: ASYNC110 (paced as polls; a source may serve its cache first)
            await asyncio.sleep(INTERVAL / 4)
        assert first.comms is Comms.FAILING, f"a first failed poll went straight to {first.comms}"
        assert portfile.path.exists(), "one failed poll inside the grace must not reach NUT"
        failed = [first]
        while failed[-1].comms is not Comms.LOST:
            failed.append(await cycle(monitor))
        assert not portfile.path.exists() and portfile.hidden_path.exists()
        await step(end)
        while (back := await cycle(monitor)).comms is not Comms.OK:  # noqa: ASYNC110 (paced as polls are)
            await asyncio.sleep(INTERVAL / 4)
    assert back.failures == 0 and portfile.path.exists() and not portfile.hidden_path.exists()
    text = portfile.path.read_text()
    assert text.startswith(HAND) and parse_values(text)["ups.status"] == back.variables["ups.status"]
    reasons = [str(s.error) for s in failed]
    assert all(isinstance(s.error, SourceError) for s in failed), reasons
    assert isinstance(monitor.source, Attempts)
    attempts = [str(e) for e in monitor.source.errors]
    assert any(re.search(error, r) for r in attempts), attempts
    ours = [r for r in caplog.records if r.name.startswith("nutbridge")]
    messages = [r.getMessage() for r in ours]
    for once in ("poll failed; NUT keeps the last values", "lost contact after", "restored after", "renamed to",
                 f"port file {portfile.path} restored"):  # fmt: skip
        assert sum(once in m for m in messages) == 1, (once, messages)
    loud = [re.sub(r"\d+(\.\d+)?", "N", r.getMessage()) for r in ours if r.levelno >= logging.WARNING]
    assert len(loud) == len(set(loud)), f"a warning repeated: {loud}"  # once per change, not once per attempt
    assert not [r for r in ours if r.exc_info], "a traceback in the log"
    for secret in secrets:
        assert not [r for r in caplog.records if secret in r.getMessage()], f"{secret!r} reached the log"
        assert all(secret not in r for r in reasons + attempts)
    return failed
