"""The monitor with the real simulator and a real port file: comms state, retries, sinks, restart command."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from nutbridge.monitor import Monitor, Poll
from nutbridge.nut.driver import PortFileSink
from nutbridge.nut.portfile import PortFile, parse_values
from nutbridge.simulator.physics import Mode
from nutbridge.simulator.server import SimulatedTracer
from nutbridge.sources.tracer import TracerSource


def sink_for(port_file: Path, restart: str | None = None) -> PortFileSink:
    pf = PortFile(port_file)
    pf.locate()
    return PortFileSink(pf, restart_command=restart)


async def poll_and_tell(monitor: Monitor) -> Poll:
    async with asyncio.timeout(10):  # a guard against hanging, not a timing assertion
        poll = await monitor.poll()
        await monitor.tell(poll)
        for sink in monitor.sinks:
            if isinstance(sink, PortFileSink):
                await sink.drain()
    return poll


async def test_poll_writes_nut_values(source: TracerSource, port_file: Path) -> None:
    sink = sink_for(port_file)
    monitor = Monitor(source, [sink], interval=1.0)
    poll = await poll_and_tell(monitor)
    assert poll.reading is not None and poll.comms_ok
    values = parse_values(port_file.read_text())
    assert values["ups.status"] == "OL CHRG"
    assert values["battery.charge.low"] == "25"  # the hand-set value stays
    assert port_file.read_text().startswith("# written by hand\nbattery.charge.low: 25\n")


async def test_nocomms_after_n_failures_then_recovery(
    source: TracerSource, sim: SimulatedTracer, port_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    marker = tmp_path / "restarted"
    sink = sink_for(port_file, restart=f"touch {marker}")
    monitor = Monitor(source, [sink], interval=0.5, nocomms_after=2)
    await poll_and_tell(monitor)
    sim.plant.set_mode(Mode.SILENT)
    first = await poll_and_tell(monitor)
    assert first.reading is None and first.comms_ok and port_file.exists()  # one failure: not yet
    for _ in range(3):
        assert not (await poll_and_tell(monitor)).comms_ok
    assert not port_file.exists() and sink.portfile.hidden_path.exists()
    assert not marker.exists()
    sim.plant.set_mode(Mode.NIGHT)
    back = await poll_and_tell(monitor)
    assert back.comms_ok and back.failures == 0
    assert port_file.exists() and not sink.portfile.hidden_path.exists()
    assert parse_values(port_file.read_text())["ups.status"] == "OB DISCHRG"  # fresh values, not stale ones
    assert marker.exists()  # driver_restart_command ran after the rename back
    messages = [r.getMessage() for r in caplog.records]
    assert sum("lost contact" in m for m in messages) == 1
    assert sum("restored after 4 failed poll(s)" in m for m in messages) == 1
    assert sum("renamed to" in m for m in messages) == 1


async def test_a_dead_device_never_holds_a_poll_past_its_deadline(source: TracerSource, sim: SimulatedTracer) -> None:
    monitor = Monitor(source, [], interval=0.6)
    sim.plant.set_mode(Mode.SILENT)
    # Without the deadline tenacity would retry a silent device for ever; the guard turns that into a failure.
    async with asyncio.timeout(10):
        poll = await monitor.poll(asyncio.get_running_loop().time() + 1.5)
    assert poll.error is not None and poll.reading is None
    assert source.requests >= 2, "no retry happened within the poll"


async def test_retries_within_a_poll_recover_a_hiccup(source: TracerSource, sim: SimulatedTracer) -> None:
    monitor = Monitor(source, [], interval=5.0)
    sim.plant.set_mode(Mode.SILENT)
    loop = asyncio.get_running_loop()
    loop.call_later(0.5, sim.plant.set_mode, Mode.SUN)
    poll = await monitor.poll()
    assert poll.reading is not None and poll.failures == 0


async def test_a_failing_sink_is_logged_once_and_the_monitor_goes_on(
    source: TracerSource, port_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = sink_for(port_file)
    monitor = Monitor(source, [sink], interval=0.5)
    port_file.unlink()  # the file vanished under us: reading it fails
    for _ in range(3):
        assert not await monitor.once()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "cannot read" in errors[0].getMessage()
    port_file.write_text("")
    assert await monitor.once()
    assert any("works again" in r.getMessage() for r in caplog.records)


async def test_failed_restart_command_is_logged(
    source: TracerSource, sim: SimulatedTracer, port_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = sink_for(port_file, restart="false")
    monitor = Monitor(source, [sink], interval=0.5)
    sim.plant.set_mode(Mode.SILENT)
    await poll_and_tell(monitor)
    sim.plant.set_mode(Mode.SUN)
    await poll_and_tell(monitor)
    assert any("driver_restart_command 'false' exited 1" in r.getMessage() for r in caplog.records)
