"""The Tracer's Modbus link: replies crafted by a raw TCP server in front of the simulator (MBAP, and RTU frames
as through a transparent RS-485 gateway), and a serial line that is pulled and plugged back (socat).

A silent device and random noise from the simulator itself are in test_monitor.py and devices/tracer/test_source.py
(see the matrix in tests/faults/__init__.py)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nutbridge.devices.modbus import ModbusTarget, parse_modbus_url
from nutbridge.devices.tracer.source import TracerSource
from nutbridge.errors import ProtocolError, SourceError
from nutbridge.simulator.physics import Mode, Plant
from nutbridge.simulator.server import SimulatedTracer
from tests.conftest import need
from tests.faults.outage import TIMEOUT, ride_out, watched
from tests.faults.servers import OTHERS_WORD, ModbusProxy
from tests.helpers.tracer import start_socat

NO_ANSWER = r"no answer reading 0x[0-9a-f]{4}"


@pytest.fixture(params=["tcp", "rtu+tcp"])
async def link(request: pytest.FixtureRequest) -> AsyncIterator[tuple[ModbusProxy, TracerSource]]:
    """The simulator in the sun (70 %), the crafting proxy in front of it, and a Tracer source reading through it."""
    rtu = request.param == "rtu+tcp"
    async with SimulatedTracer(Plant(mode=Mode.SUN, soc=70)) as sim:
        upstream = await sim.start_tcp("127.0.0.1", 0, rtu=rtu)
        async with ModbusProxy(upstream, rtu=rtu) as proxy:
            target = ModbusTarget(scheme=request.param, host="127.0.0.1", port=proxy.port)
            async with TracerSource(target, timeout=TIMEOUT) as source:
                yield proxy, source


CRAFTED = {
    "noise": NO_ANSWER,  # bytes of the right length that are no frame
    "wrong-function": r"answered function code [34] to a read of \d+ registers at 0x[0-9a-f]{4} \(function code",
    "short-count": r"asked \d+ registers at 0x[0-9a-f]{4}, got \d+",  # a well-formed reply, a register short
    "partial": NO_ANSWER,  # half a frame, the rest after the timeout
    "partial-close": NO_ANSWER,  # half a frame, then the connection closes
    "wrong-device": NO_ANSWER,  # device id 2 answers in place of ours: not ours, so no answer
}


@pytest.mark.parametrize(("fault", "error"), [pytest.param(f, e, id=f) for f, e in CRAFTED.items()])
async def test_crafted_replies_fail_the_poll_then_nocomms_then_it_comes_back(
    link: tuple[ModbusProxy, TracerSource], port_file: Path, caplog: pytest.LogCaptureFixture, fault: str, error: str
) -> None:
    proxy, source = link

    def begin() -> None:
        proxy.fault = fault

    def end() -> None:
        proxy.fault = None

    async with watched(source, port_file) as monitor:
        failed = await ride_out(monitor, begin, end, error=error, caplog=caplog)
    assert proxy.crafted > 0
    assert all(s.reading is None for s in failed)  # nothing of a crafted reply reached NUT


async def test_a_reply_to_the_wrong_function_is_no_reading(link: tuple[ModbusProxy, TracerSource]) -> None:
    """A well-formed reply to a read of the holding registers, for a read of the input registers: pymodbus
    returns it as data (its registers have the right count), so the source checks the function code."""
    proxy, source = link
    await source.connect()
    proxy.fault = "wrong-function"
    with pytest.raises(ProtocolError, match=r"answered function code 3 to a read of 4 registers at 0x3100"):
        await source.read()
    assert not source.connected  # dropped, as after any failure
    proxy.fault = None
    assert (await source.read()).battery_charge == 70


async def test_another_device_answering_first_is_never_read_as_ours(link: tuple[ModbusProxy, TracerSource]) -> None:
    """On a shared bus device id 2 answers just before ours. In MBAP its frame is skipped and ours is read; in RTU
    pymodbus drops the rest of the buffer with the stray frame, so ours is lost with it and the attempt fails
    (the monitor's retry reads it). Never is its 99 % taken for our charge."""
    proxy, source = link
    await source.read()
    proxy.fault = "other-device-first"
    if source.target.scheme == "tcp":
        reading = await source.read()
        assert reading.battery_charge == 70 != OTHERS_WORD
        assert reading.pv_power is not None and reading.pv_power > 100
    else:
        with pytest.raises(SourceError, match=NO_ANSWER):
            await source.read()
    assert proxy.crafted > 0
    proxy.fault = None
    assert (await source.read()).battery_charge == 70


async def test_the_late_half_of_a_frame_is_never_read_as_the_next_answer(
    link: tuple[ModbusProxy, TracerSource],
) -> None:
    proxy, source = link
    await source.read()
    proxy.fault, proxy.late = "partial", TIMEOUT * 2
    with pytest.raises(SourceError, match=NO_ANSWER):
        await source.read()
    proxy.fault = None
    assert (await source.read()).battery_charge == 70  # before the late half is sent
    await asyncio.sleep(TIMEOUT * 2)
    assert (await source.read()).battery_charge == 70  # and after: it went to the dropped connection


async def test_a_pulled_serial_adapter_goes_nocomms_and_a_new_pty_at_the_same_path_brings_it_back(
    tmp_path: Path, port_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """kill -9 of socat: the pty vanishes under the open client (its link left dangling, as /dev/ttyUSB0 is gone
    when the adapter is pulled); then a new socat makes a new pty at the same path."""
    need(shutil.which("socat") is not None, "socat (Debian package socat) for the serial line")
    device_end, our_end = tmp_path / "ttyTracer", tmp_path / "ttyUSB0"
    cables = [await asyncio.to_thread(start_socat, device_end, our_end)]
    tracers: list[SimulatedTracer] = []

    async def plug_in() -> None:
        if len(tracers) == len(cables):  # the cable is pulled: plug a new one in
            cables.append(await asyncio.to_thread(start_socat, device_end, our_end))
        tracer = SimulatedTracer(Plant(mode=Mode.SUN, soc=70))
        await tracer.start_serial(str(device_end))
        tracers.append(tracer)

    async def pull() -> None:
        cables[-1].kill()
        await asyncio.to_thread(cables[-1].wait, 5)
        await tracers[-1].stop()

    try:
        await plug_in()
        target = parse_modbus_url(f"rtu://{our_end}?baudrate=115200", "test")
        async with TracerSource(target, timeout=TIMEOUT) as source, watched(source, port_file) as monitor:
            failed = await ride_out(monitor, pull, plug_in, error=r"cannot open rtu://|" + NO_ANSWER, caplog=caplog)
        assert any("cannot open" in str(s.error) for s in failed)  # the path was gone
        assert len(cables) == 2 and our_end.exists()
    finally:
        for tracer in tracers:
            await tracer.stop()
        for cable in cables:
            cable.kill()
            await asyncio.to_thread(cable.wait, 5)
