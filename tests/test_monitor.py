"""The monitor with the real simulator and a real port file: snapshots, comms grace, retries, the sink boundary."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from nutbridge.config_sections import MonitorConfig
from nutbridge.devices.tracer.nut import TABLE
from nutbridge.devices.tracer.source import TracerSource
from nutbridge.errors import SourceError
from nutbridge.model import DeviceInfo, Reading
from nutbridge.monitor import Monitor
from nutbridge.nut.portfile import HandSettings
from nutbridge.nut.portfile_text import parse_values
from nutbridge.nut.variables import Var, setting_names
from nutbridge.outlook import Forecaster, capacity_wh
from nutbridge.simulator.physics import Mode
from nutbridge.simulator.server import SimulatedTracer
from nutbridge.sinks import SinkRunner, Wants
from nutbridge.snapshot import Comms, Snapshot
from nutbridge.sunrise import DAY, Estimate, History
from tests.helpers.monitor import FakeSource, SwallowingSource, cycle, nut_view, sink_for


class Recorder:
    """A sink that keeps every snapshot it is given."""

    wants = Wants.NEWEST

    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        self.seen: list[Snapshot] = []
        self.delay = delay
        self.error = error

    def __str__(self) -> str:
        return "recorder"

    async def update(self, snapshot: Snapshot) -> None:
        self.seen.append(snapshot)
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error


@pytest.fixture
async def running() -> AsyncIterator[list[SinkRunner]]:
    """Runners started in the test's loop and stopped after it."""
    runners: list[SinkRunner] = []
    yield runners
    for runner in runners:
        runner.close()


def start(runners: list[SinkRunner], *sinks: object, **kw: float) -> list[SinkRunner]:
    for sink in sinks:
        runner = SinkRunner(sink, **kw)  # type: ignore[arg-type]
        runners.append(runner)
        asyncio.get_running_loop().create_task(runner.run())
    return runners


async def test_one_snapshot_per_poll_shared_by_every_sink(
    source: TracerSource, port_file: Path, running: list[SinkRunner]
) -> None:
    first, second, sink = Recorder(), Recorder(), sink_for(port_file)
    settings = HandSettings(sink.portfile, setting_names(TABLE)).get
    monitor = Monitor(source, start(running, sink, first, second), interval=1.0, **nut_view(TABLE, settings))
    snapshot = await cycle(monitor)
    assert first.seen == second.seen == [snapshot]
    assert first.seen[0] is second.seen[0]
    assert snapshot.comms is Comms.OK and snapshot.error is None and snapshot.last_good == snapshot.time
    assert snapshot.reading is not None and snapshot.info is not None and snapshot.info.model == "Tracer2210AN"
    assert snapshot.variables["ups.status"] == "OL CHRG"
    assert snapshot.variables["battery.charge.low"] == "25"  # the hand-set value, as every consumer sees it
    with pytest.raises(TypeError):
        snapshot.variables["ups.status"] = "OB"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.comms = Comms.LOST  # type: ignore[misc]
    values = parse_values(port_file.read_text())
    assert values["ups.status"] == "OL CHRG" and values["battery.charge.low"] == "25"
    assert port_file.read_text().startswith("# written by hand\nbattery.charge.low: 25\n")


async def test_a_glitch_rides_through_the_grace_and_a_loss_does_not(
    source: TracerSource,
    sim: SimulatedTracer,
    port_file: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    running: list[SinkRunner],
) -> None:
    caplog.set_level(logging.INFO)
    marker = tmp_path / "restarted"
    async with sink_for(port_file, restart=("touch", str(marker))) as sink:  # the restart runs in its TaskGroup
        monitor = Monitor(source, start(running, sink), interval=0.3, grace=1.5, **nut_view())
        await cycle(monitor)
        sim.plant.set_mode(Mode.SILENT)
        first = await cycle(monitor)
        assert first.comms is Comms.FAILING and isinstance(first.error, SourceError)
        assert first.reading is None and first.last_good is not None
        assert port_file.exists(), "one failed poll inside the grace must not reach NUT"
        seen = [first]
        while seen[-1].comms is not Comms.LOST:
            seen.append(await cycle(monitor))
        assert seen[-1].silent_for >= 1.5 and all(s.silent_for < 1.5 for s in seen[:-1])
        assert not port_file.exists() and sink.portfile.hidden_path.exists()
        assert not marker.exists()
        sim.plant.set_mode(Mode.NIGHT)
        back = await cycle(monitor)
        assert back.comms is Comms.OK and back.failures == 0
        assert port_file.exists() and not sink.portfile.hidden_path.exists()
        assert parse_values(port_file.read_text())["ups.status"] == "OB DISCHRG"  # fresh values, not stale ones
        assert marker.exists()  # the driver restart ran after the rename back
    messages = [r.getMessage() for r in caplog.records]
    assert sum("poll failed; NUT keeps the last values" in m for m in messages) == 1
    assert sum("lost contact after" in m for m in messages) == 1
    assert sum(f"restored after {len(seen)} failed poll(s)" in m for m in messages) == 1
    assert sum("renamed to" in m for m in messages) == 1


async def test_a_dead_device_never_holds_a_poll_past_its_deadline(source: TracerSource, sim: SimulatedTracer) -> None:
    monitor = Monitor(source, interval=0.6, **nut_view())
    sim.plant.set_mode(Mode.SILENT)
    start_at = monitor.clock()
    # Without the deadline tenacity would retry a silent device for ever; the guard turns that into a failure.
    async with asyncio.timeout(10):
        snapshot = await monitor.poll(start_at + 1.5)
    assert snapshot.error is not None and snapshot.reading is None
    assert monitor.clock() < start_at + 1.5 + source.timeout, "the poll ran past its deadline and one attempt"
    assert source.requests >= 2, "no retry happened within the poll"


async def test_retries_within_a_poll_recover_a_hiccup(source: TracerSource, sim: SimulatedTracer) -> None:
    monitor = Monitor(source, interval=5.0, **nut_view())
    sim.plant.set_mode(Mode.SILENT)
    asyncio.get_running_loop().call_later(0.5, sim.plant.set_mode, Mode.SUN)
    snapshot = await monitor.poll()
    assert snapshot.comms is Comms.OK and snapshot.failures == 0


async def test_a_failing_sink_is_logged_once_and_polling_goes_on(
    source: TracerSource, port_file: Path, caplog: pytest.LogCaptureFixture, running: list[SinkRunner]
) -> None:
    broken = Recorder(error=BrokenPipeError(32, "Broken pipe"))  # `nutbridge -v | head -1`
    sink = sink_for(port_file)
    monitor = Monitor(source, start(running, broken, sink), interval=0.5, **nut_view())
    port_file.unlink()  # the file vanished under us: reading it fails
    for _ in range(3):
        assert (await cycle(monitor)).comms is Comms.OK
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert sum("BrokenPipeError" in m for m in errors) == 1
    assert sum("cannot read" in m for m in errors) == 1
    assert len(broken.seen) == 3
    port_file.write_text("")
    await cycle(monitor)
    assert "ups.status" in port_file.read_text()
    assert any("works again" in r.getMessage() for r in caplog.records)


async def test_a_slow_sink_never_delays_the_poll(
    source: TracerSource, port_file: Path, running: list[SinkRunner], caplog: pytest.LogCaptureFixture
) -> None:
    slow, fast = Recorder(delay=3600), Recorder()
    monitor = Monitor(
        source, start(running, slow, sink_for(port_file), fast, timeout=30, queue_size=4), interval=0.2, **nut_view()
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(2.0, stop.set)
    async with asyncio.timeout(20):
        await monitor.run(stop)
    assert monitor.polls >= 5, "polling stalled behind a sink that never finishes"
    assert len(fast.seen) >= monitor.polls - 1
    assert len(slow.seen) == 1  # still on its first snapshot; the rest were dropped, not queued without bound
    assert running[0].dropped >= monitor.polls - 1 - 4
    assert any("recorder is falling behind" in r.getMessage() for r in caplog.records)


async def test_a_hung_sink_times_out_and_recovers(source: TracerSource, running: list[SinkRunner]) -> None:
    hung = Recorder(delay=3600)
    monitor = Monitor(source, start(running, hung, timeout=0.2), interval=1.0, **nut_view())
    snapshot = await cycle(monitor)
    assert not await running[0].handled(snapshot.seq)  # timed out: counted as a failure
    hung.delay = 0
    again = await cycle(monitor)
    assert await running[0].handled(again.seq)


async def test_the_first_stop_always_ends_the_loop_even_when_a_cancel_is_swallowed() -> None:
    source = SwallowingSource()
    monitor = Monitor(source, interval=0.2, **nut_view())
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(monitor.run(stop))

    def sigterm() -> None:  # what the daemon's SIGTERM handler does: set the event, cancel the poll
        stop.set()
        task.cancel()

    source.on_read.append(sigterm)
    async with asyncio.timeout(5):
        await asyncio.wait({task})
    assert source.reads == 1, "the daemon went on polling after the stop"


async def test_ob_ol_hysteresis_across_polls(port_file: Path) -> None:
    class Marginal(SwallowingSource):
        currents = (0.5, -0.1, 0.03, -0.15, 0.04, -0.5, 0.03, 0.1)

        async def read(self) -> Reading:
            current = self.currents[self.reads]
            self.reads += 1
            return Reading(time=0.0, battery_charge=60, battery_current=current, pv_power=12.0, battery_voltage=12.5)

    monitor = Monitor(Marginal(), interval=1.0, **nut_view())
    words = []
    for _ in Marginal.currents:
        words.append((await monitor.poll()).variables["ups.status"].split()[0])  # type: ignore[union-attr]
    # OL holds through small draws; only a clear drain goes OB; only a clear charge comes back
    assert words == ["OL", "OL", "OL", "OL", "OL", "OB", "OB", "OL"]


class Night(SwallowingSource):
    """A Tracer at night: 40 % of 100 Ah × 12 V, 30 W of load (a heater on the load terminals), no sun; 20:00 UTC."""

    info = DeviceInfo(mfr="test", model="night", battery_capacity=100.0, battery_voltage_nominal=12.0)

    async def read(self) -> Reading:
        self.reads += 1
        return Reading(time=20000 * DAY + 20 * 3600.0 + self.reads, battery_charge=40.0, battery_voltage=12.2,
                       battery_current=-2.4, pv_power=0.0, load_power=30.0)  # fmt: skip


@pytest.mark.parametrize("reserve", [None, 30.0])
async def test_the_sunrise_reserve_raises_lb_only_when_it_is_on(reserve: float | None) -> None:
    history = History(estimate=Estimate(time_of_day=6 * 3600.0, days=7, offset=0), peak=100.0)
    forecaster = Forecaster(
        history, lambda info: capacity_wh(info, info.battery_capacity, info.battery_voltage_nominal)
    )
    monitor = Monitor(Night(), interval=1.0, outlook=forecaster, reserve=reserve, **nut_view())
    snapshot = await monitor.poll()
    # 30 W for the 10 h to 06:00 (less 1 s) = 300 Wh = 25 % of 1200 Wh: 40 − 25 = 15 % at sunrise, under 30 %
    assert snapshot.variables["experimental.battery.charge.sunrise"] == "15"
    assert snapshot.variables["experimental.sunrise.timer"] == str(10 * 3600 - 1)
    assert snapshot.outlook is not None
    status = snapshot.variables["ups.status"]
    assert status == ("OB DISCHRG" if reserve is None else "OB LB DISCHRG")


class Outage(FakeSource):
    """A device that is silent during [start, end) of a fake clock; each failed attempt takes one timeout."""

    info = DeviceInfo(mfr="test", model="outage")
    table: Sequence[Var[Any, Any]] = TABLE
    timeout = 1.0

    def __init__(self, start: float, end: float) -> None:
        self.now, self.start, self.end = 0.0, start, end

    def __str__(self) -> str:
        return "outage"

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def read(self) -> Reading:
        if self.start <= self.now < self.end:
            self.now += self.timeout
            raise SourceError("no answer")
        return Reading(time=self.now, battery_charge=50, pv_power=0.0, battery_current=-1.0)

    async def reset(self) -> None:
        return None


async def renamed_during(outage: Outage, interval: float, until: float) -> bool:
    """Poll on ``interval``'s schedule until ``until``; True if comms were ever declared lost."""
    grace = MonitorConfig().nocomms_grace  # the default users get
    monitor = Monitor(outage, interval=interval, grace=grace, clock=outage.clock, sleep=outage.sleep, **nut_view())
    lost = False
    while outage.now < until:
        slot = outage.now
        lost |= (await monitor.poll()).comms is Comms.LOST
        outage.now = max(outage.now, slot + interval)
    return lost


@pytest.mark.parametrize("interval", [1.0, 10.0])
@pytest.mark.parametrize("phase", [0.1, 3.0, 9.9])
async def test_default_grace_rides_out_5_s_and_reports_20_s_at_any_phase(interval: float, phase: float) -> None:
    # the schedule polls at 0, interval, 2 x interval ...; the outage starts `phase` seconds into the schedule
    start = phase if interval > phase else phase % interval
    assert not await renamed_during(Outage(start, start + 5.0), interval, until=60)
    assert await renamed_during(Outage(start, start + 20.0), interval, until=60)


async def test_on_battery_or_without_contact_the_faster_interval_applies() -> None:
    outage = Outage(start=10.0, end=20.0)  # answers on battery (1 A drain, no PV) outside [10, 20)
    monitor = Monitor(
        outage, interval=60, interval_on_battery=5, grace=100, clock=outage.clock, sleep=outage.sleep, **nut_view()
    )
    assert monitor.active_interval == 60  # nothing known yet
    assert (await monitor.poll()).power is not None and monitor.active_interval == 5  # OB: POLLFREQALERT
    outage.now = 12.0
    assert (await monitor.poll()).comms is Comms.FAILING and monitor.active_interval == 5
    assert Monitor(outage, interval=60).active_interval == 60  # unset: the one interval everywhere

    class Sunny(Outage):
        async def read(self) -> Reading:
            return Reading(time=self.now, battery_charge=80, pv_power=50.0, battery_current=3.0)

    sunny = Sunny(0, 0)
    monitor = Monitor(sunny, interval=60, interval_on_battery=5, clock=sunny.clock, sleep=sunny.sleep, **nut_view())
    await monitor.poll()
    assert monitor.active_interval == 60  # OL: the normal interval


async def test_without_retries_a_poll_makes_one_attempt() -> None:
    outage = Outage(start=0.0, end=100.0)
    monitor = Monitor(outage, interval=10, grace=0, clock=outage.clock, sleep=outage.sleep, retries=False, **nut_view())
    assert (await monitor.poll()).comms is Comms.LOST
    assert outage.now == outage.timeout  # one attempt, not attempts until the deadline
