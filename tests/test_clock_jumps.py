"""A clock that jumps: a Pi without RTC boots days behind, then NTP steps it forward (once backward too).

Intervals run on the monotonic clock, the wall clock only stamps what people read. Here the wall clock is the
test's (``time.time`` patched in-process, as NTP would step it), and the data log, the poll schedule, the live
snapshot's freshness and the port file's mtimes are checked across the steps. The token cache's expiry and
backoff are in tests/devices/enphase/test_token.py (test_a_stepped_wall_clock_moves_expiry_but_not_the_backoff), the
API's ages in tests/server/test_api.py, and a real dummy-ups reading a file whose mtime is ahead of the clock, at
start and after a step back while running, in tests/nut/test_nut_e2e.py (test_a_port_file_from_the_future_...).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import time
from pathlib import Path
from types import MappingProxyType

import pytest

from nutbridge.datalog.format import day_file
from nutbridge.datalog.writer import DataLog
from nutbridge.model import Reading
from nutbridge.monitor import Monitor
from nutbridge.nut.portfile import PortFile
from nutbridge.server.live import LiveSnapshot
from nutbridge.sinks import SinkRunner
from nutbridge.snapshot import Comms, Snapshot
from tests.helpers.monitor import SwallowingSource

DAY = 86400.0
NOW = time.time()


class WallClock:
    """``time.time`` as NTP would leave it: the true time plus a step the test sets."""

    def __init__(self) -> None:
        self.step = 0.0
        self.real = time.time

    def __call__(self) -> float:
        return self.real() + self.step


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> WallClock:
    clock = WallClock()
    monkeypatch.setattr(time, "time", clock)
    return clock


def good(t: float, seq: int = 1) -> Snapshot:
    reading = Reading(time=t, battery_charge=70.0, pv_power=50.0, battery_voltage=13.1)
    return Snapshot(seq=seq, time=t, comms=Comms.OK, reading=reading, variables=MappingProxyType({}))


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("tracerData*.csv"))}


@pytest.mark.parametrize("flush_interval", [0.0, 60.0])
async def test_the_data_log_keeps_time_order_through_clock_steps(
    tmp_path: Path, flush_interval: float, caplog: pytest.LogCaptureFixture
) -> None:
    async def log(log: DataLog, *times: float) -> None:
        for n, t in enumerate(times):
            await log.update(good(t, n))
        await log.flush()

    caplog.set_level(logging.INFO)
    datalog = DataLog(tmp_path, flush_interval=flush_interval)
    await log(datalog, 1000.0)  # a clock never set: 1970
    assert files(tmp_path) == {} and datalog.skipped == 1
    await log(datalog, NOW, NOW + 5)
    today = day_file(tmp_path, dt.date.fromtimestamp(NOW)).name
    assert list(files(tmp_path)) == [today] and len(files(tmp_path)[today].splitlines()) == 3
    before = files(tmp_path)
    await log(datalog, NOW - 3 * DAY, NOW - 3 * DAY + 5)  # stepped back three days: no row lands anywhere
    assert files(tmp_path) == before and datalog.skipped == 3
    await log(datalog, NOW + 10)  # past the newest row again: in order, in today's file
    assert len(files(tmp_path)[today].splitlines()) == 4
    kept = files(tmp_path)[today]
    await log(datalog, NOW + 2 * DAY)  # NTP steps forward two days: a new file, the old ones as they were
    later = day_file(tmp_path, dt.date.fromtimestamp(NOW + 2 * DAY)).name
    assert files(tmp_path)[today] == kept and later in files(tmp_path)
    # the daemon restarts after a reboot that left the clock a day behind the log's newest row
    restarted = DataLog(tmp_path, flush_interval=flush_interval)
    snapshot = files(tmp_path)
    await log(restarted, NOW + 1 * DAY)
    assert files(tmp_path) == snapshot and restarted.skipped == 1
    await log(restarted, NOW + 2 * DAY + 10)
    assert len(files(tmp_path)[later].splitlines()) == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and "not set yet" in warnings[0] and "behind the log's newest row" in warnings[1]
    assert sum("in order again" in r.getMessage() for r in caplog.records) == 3  # each episode ends once


async def test_polls_keep_their_schedule_and_freshness_while_the_wall_clock_steps(wall: WallClock) -> None:
    live = LiveSnapshot(interval=0.05)
    runner = SinkRunner(live, queue_size=1)
    monitor = Monitor(SwallowingSource(), [runner], interval=0.05, grace=1.0, wall_clock=time.time)  # the stepped one
    stop = asyncio.Event()
    stamps: list[float] = []
    async with asyncio.TaskGroup() as tg:
        tg.create_task(runner.run())
        tg.create_task(monitor.run(stop))
        async with asyncio.timeout(20):  # a guard: a schedule on the wall clock would wait for days here
            for step in (-3 * DAY, 0.0, 5 * DAY, -1 * DAY):
                wall.step = step
                seq = monitor.polls
                while monitor.polls < seq + 3:  # noqa: ASYNC110 - three more polls at this step
                    await asyncio.sleep(0.01)
                assert live.latest is not None
                stamps.append(live.latest.time - wall.real())
                assert (live.age() or 0.0) < 5  # fresh: the age is the monotonic clock's
        stop.set()
        runner.close()
    # the snapshots carry the stepped wall time, for people to read
    assert [round(s / DAY) for s in stamps] == [-3, 0, 5, -1]


def test_port_file_writes_go_on_when_the_clock_steps_back(tmp_path: Path, wall: WallClock) -> None:
    path = tmp_path / "solar.dev"
    path.write_text("battery.charge.low: 30\n")
    port = PortFile(path)
    port.locate()
    seen: list[int] = []
    for n, step in enumerate((0.0, -2 * DAY, -2 * DAY, 0.0)):
        wall.step = step
        port.update({"battery.charge": str(50 + n)})
        seen.append(int(path.stat().st_mtime))
    assert all(a != b for a, b in itertools.pairwise(seen)), seen  # dummy-once sees each write: a new second
    assert seen[1] < seen[0] - DAY  # written with the stepped clock's time, not held a day ahead of it
    assert path.read_text().startswith("battery.charge.low: 30\n") and "battery.charge: 53" in path.read_text()
