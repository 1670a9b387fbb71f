"""The Tracer source against a real pymodbus server (the simulator), over TCP, RTU-over-TCP and a serial pty."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nutbridge.devices.modbus import ModbusTarget, parse_modbus_url
from nutbridge.devices.modbus_map import Request, Table
from nutbridge.devices.tracer.source import TracerSource
from nutbridge.errors import ProtocolError, SourceError
from nutbridge.model import ChargeStage
from nutbridge.simulator import server
from nutbridge.simulator.physics import Mode, Plant
from nutbridge.simulator.server import SimulatedTracer
from tests.conftest import need
from tests.helpers.tracer import start_socat


async def test_reads_rated_data_and_identification_once(source: TracerSource) -> None:
    info = await source.connect()
    assert (info.mfr, info.model, info.firmware) == ("EPsolar Tech co., Ltd", "Tracer2210AN", "V02.13+V07.21")
    assert info.battery_capacity == 100
    assert info.battery_type == "PbAc sealed"
    assert info.battery_voltage_nominal == 12.0
    assert info.pv_power_rated == 260.0
    # the load terminal's settings, EPEver's 12 V defaults as a real Tracer2215BN reads them (epever-load-control.md
    # [TD]): LVD 11.10 V, LVR 12.60 V, under-voltage warning 12.00 V and its recover 12.20 V, manual load control
    assert (info.battery_voltage_disconnect, info.battery_voltage_reconnect) == (11.10, 12.60)
    assert (info.battery_voltage_low, info.battery_voltage_low_recover) == (12.00, 12.20)
    assert info.load_control == "manual"
    assert source.requests == 6  # 5 register reads (0x903D on its own) + device identification


async def test_full_poll_is_six_requests_and_decodes(source: TracerSource, sim: SimulatedTracer) -> None:
    await source.connect()
    before = source.requests
    reading = await source.read()
    assert source.requests - before == 6
    assert reading.battery_charge == 70
    assert reading.pv_power is not None and reading.pv_power > 100
    assert reading.battery_current is not None and reading.battery_current > 0
    assert reading.charge_stage is ChargeStage.BOOST
    assert reading.load_power == pytest.approx(15.0)
    assert reading.faults == ()


async def test_night_and_fault_reach_the_reading(source: TracerSource, sim: SimulatedTracer) -> None:
    sim.plant.set_mode(Mode.NIGHT)
    night = await source.read()
    assert night.pv_power == 0
    assert night.battery_current is not None and night.battery_current < 0
    assert night.charge_stage is ChargeStage.OFF
    sim.plant.set_mode(Mode.FAULT)
    assert "load short circuit" in (await source.read()).faults
    sim.plant.set_mode(Mode.LOWBATT)
    assert (await source.read()).battery_low


async def test_strict_device_answers_exception_02_outside_blocks(source: TracerSource) -> None:
    await source.connect()
    client = source.link.client
    assert client is not None
    gap = await client.read_input_registers(0x3100, count=19, device_id=1)
    wrong_fc = await client.read_holding_registers(0x3100, count=1, device_id=1)
    assert gap.isError() and gap.exception_code == 2
    assert wrong_fc.isError() and wrong_fc.exception_code == 2


async def test_exception_reply_is_a_protocol_error_and_drops_the_link(source: TracerSource) -> None:
    await source.read()
    assert source.connected
    with pytest.raises(ProtocolError, match=r"exception 2 reading 1 registers at 0x3108"):
        await source._read(Request(Table.INPUT, 0x3108, 1))  # the undocumented gap
    assert not source.connected and source.link.client is None  # dropped: the next read reconnects
    assert (await source.read()).battery_charge == 70


async def test_unknown_device_id_is_a_source_error(sim: SimulatedTracer) -> None:
    target = ModbusTarget(scheme="tcp", host="127.0.0.1", port=sim.port, device_id=2)
    sim.device_id = 2  # not served: pymodbus answers with an exception for unknown ids
    async with TracerSource(target, timeout=0.3) as tracer:
        with pytest.raises(SourceError):
            await tracer.read()
    assert not tracer.connected


async def test_silent_device_times_out_and_reconnects(source: TracerSource, sim: SimulatedTracer) -> None:
    await source.read()
    sim.plant.set_mode(Mode.SILENT)
    with pytest.raises(SourceError, match="no answer"):
        await source.read()
    assert not source.connected  # the link is dropped so a late answer can't be taken for the next one
    sim.plant.set_mode(Mode.SUN)
    assert (await source.read()).battery_charge == 70


async def test_garbage_bytes_are_an_error_not_a_reading(source: TracerSource, sim: SimulatedTracer) -> None:
    await source.read()
    sim.plant.set_mode(Mode.GARBAGE)
    for _ in range(3):
        with pytest.raises(SourceError):
            await source.read()
    sim.plant.set_mode(Mode.SUN)
    assert (await source.read()).battery_charge == 70


async def test_nothing_listening_is_a_source_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with TracerSource(parse_modbus_url(f"tcp://127.0.0.1:{port}", "test"), timeout=0.3) as tracer:
        with pytest.raises(SourceError, match="cannot open"):
            await tracer.read()


async def test_missing_serial_device_is_a_source_error(tmp_path: Path) -> None:
    target = parse_modbus_url(f"rtu://{tmp_path}/ttyUSB9", "test")
    async with TracerSource(target, timeout=0.3) as tracer:
        with pytest.raises(SourceError, match="cannot open"):
            await tracer.read()


async def test_server_killed_mid_session_then_back(sim: SimulatedTracer) -> None:
    target = ModbusTarget(scheme="tcp", host="127.0.0.1", port=sim.port)
    async with TracerSource(target, timeout=0.3) as tracer:
        await tracer.read()
        await sim.stop()
        with pytest.raises(SourceError):
            await tracer.read()
        await sim.start_tcp("127.0.0.1", target.port)
        assert (await tracer.read()).battery_charge == 70


async def test_rtu_framing_through_a_transparent_tcp_gateway() -> None:
    async with SimulatedTracer(Plant(mode=Mode.SUN)) as sim:
        port = await sim.start_tcp("127.0.0.1", 0, rtu=True)
        async with TracerSource(parse_modbus_url(f"rtu+tcp://127.0.0.1:{port}", "test"), timeout=0.5) as tracer:
            reading = await tracer.read()
    assert reading.charge_stage is ChargeStage.BOOST


async def test_device_id_from_the_url() -> None:
    async with SimulatedTracer(Plant(mode=Mode.SUN), device_id=7) as sim:
        port = await sim.start_tcp("127.0.0.1", 0)
        async with TracerSource(parse_modbus_url(f"tcp://127.0.0.1:{port}?device_id=7", "t"), timeout=0.5) as t:
            assert (await t.read()).battery_charge == 70


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[Path, Path, list[subprocess.Popen[bytes]]]]:
    """A socat pty pair; the list holds the socat processes, so a test can pull the cable and plug it back."""
    need(shutil.which("socat") is not None, "socat (Debian package socat) for the serial-line test")
    a, b = tmp_path / "ttyA", tmp_path / "ttyB"
    procs = [start_socat(a, b)]
    yield a, b, procs
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=5)


async def test_rtu_over_a_real_serial_line(pty_pair: tuple[Path, Path, list[subprocess.Popen[bytes]]]) -> None:
    server_end, client_end, _ = pty_pair
    async with SimulatedTracer(Plant(mode=Mode.NIGHT)) as sim:
        await sim.start_serial(str(server_end))
        target = parse_modbus_url(f"rtu://{client_end}?baudrate=115200", "test")
        async with TracerSource(target, timeout=1.0) as tracer:
            info = await tracer.connect()
            reading = await tracer.read()
            assert tracer.requests == 12  # connect 6, a poll 6
    assert info.model == "Tracer2210AN"
    assert reading.pv_power == 0


async def test_serial_device_vanishes_and_comes_back(
    pty_pair: tuple[Path, Path, list[subprocess.Popen[bytes]]],
) -> None:
    server_end, client_end, procs = pty_pair
    target = parse_modbus_url(f"rtu://{client_end}?baudrate=115200", "test")
    async with TracerSource(target, timeout=0.5) as tracer:
        async with SimulatedTracer(Plant(mode=Mode.SUN)) as sim:
            await sim.start_serial(str(server_end))
            assert (await tracer.read()).battery_charge == 70
            procs[0].terminate()  # the USB adapter is pulled: the pty disappears under the open client
            procs[0].wait(timeout=5)
            with pytest.raises(SourceError):
                await tracer.read()
            with pytest.raises(SourceError, match="cannot open"):
                await tracer.read()
        procs.append(start_socat(server_end, client_end))  # plugged back in
        async with SimulatedTracer(Plant(mode=Mode.SUN)) as sim:
            await sim.start_serial(str(server_end))
            assert (await tracer.read()).battery_charge == 70


async def test_protocol_error_on_implausible_charge(source: TracerSource, monkeypatch: pytest.MonkeyPatch) -> None:
    await source.read()
    honest = server.live_values
    monkeypatch.setattr(server, "live_values", lambda plant: {**honest(plant), "battery_charge": 250})
    with pytest.raises(ProtocolError, match="implausible battery charge"):  # never published as battery.charge
        await source.read()
