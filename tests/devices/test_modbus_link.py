"""The Modbus link on its own, as another Modbus family would use it, against a real pymodbus server (the simulated
Tracer): planned reads, a coil, device identification, and pymodbus's and the OS's errors as ours."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from nutbridge.devices.modbus import ModbusTarget
from nutbridge.devices.modbus_link import ModbusLink
from nutbridge.devices.modbus_map import Request, Table
from nutbridge.errors import ProtocolError, SourceError
from nutbridge.simulator.physics import Mode
from nutbridge.simulator.server import IDENTITY, SimulatedTracer


@pytest.fixture
async def link(sim: SimulatedTracer) -> AsyncIterator[ModbusLink]:
    """A link to ``sim``, named as a family of its own would name it, opened."""
    target = ModbusTarget(scheme="tcp", host="127.0.0.1", port=sim.port)
    link = ModbusLink(target, device_id=1, timeout=0.3, name="Meter")
    await link.connect()
    yield link
    link.close()


async def test_a_planned_read_gives_its_words_and_is_counted(link: ModbusLink) -> None:
    assert await link.read(Request(Table.INPUT, 0x311A, 1)) == [70]  # the simulator's charge, a plain percentage
    assert len(await link.read(Request(Table.HOLDING, 0x9000, 15))) == 15
    assert link.requests == 2 and link.connected


async def test_an_exception_reply_is_a_protocol_error_and_drops_the_link(
    link: ModbusLink, sim: SimulatedTracer
) -> None:
    with pytest.raises(ProtocolError) as caught:
        await link.read(Request(Table.INPUT, 0x3108, 1))  # a gap between two blocks
    assert (
        str(caught.value)
        == f"Meter at tcp://127.0.0.1:{sim.port} (device id 1): exception 2 reading 1 registers at 0x3108"
    )
    assert not link.connected and link.client is None
    with pytest.raises(SourceError, match=r"^Meter at .*: not connected$"):
        await link.read(Request(Table.INPUT, 0x311A, 1))


async def test_no_answer_is_a_source_error_naming_the_read_and_drops_the_link(
    link: ModbusLink, sim: SimulatedTracer
) -> None:
    sim.plant.set_mode(Mode.SILENT)
    with pytest.raises(SourceError, match=r"^Meter at .*: no answer reading 0x3100 \(") as caught:
        await link.read(Request(Table.INPUT, 0x3100, 4))
    assert not isinstance(caught.value, ProtocolError)
    assert link.client is None  # a late answer cannot be taken for the next read's
    sim.plant.set_mode(Mode.SUN)
    await link.connect()
    assert await link.read(Request(Table.INPUT, 0x311A, 1)) == [70]


async def test_a_coil_is_switched_and_read_back(link: ModbusLink, sim: SimulatedTracer) -> None:
    assert await link.coil(2, name="load") is True
    assert await link.coil(2, False, name="load") is False
    assert sim.plant.load_on is False
    assert link.requests == 3  # a read, then a write and its read-back


async def test_a_coil_the_device_lacks_is_a_protocol_error_that_keeps_the_link(link: ModbusLink) -> None:
    with pytest.raises(ProtocolError, match=r": exception 2 writing the pump coil$"):
        await link.coil(100, True, name="pump")
    with pytest.raises(ProtocolError, match=r": exception 2 reading the pump coil$"):
        await link.coil(100, name="pump")
    assert link.connected  # the exception reply was a whole frame: nothing stray is left on the link


async def test_device_identification(link: ModbusLink) -> None:
    vendor, product, revision = await link.identify()
    assert (vendor, product, revision) == (
        IDENTITY["VendorName"],
        IDENTITY["ProductCode"],
        IDENTITY["MajorMinorRevision"],
    )


async def test_nothing_listening_cannot_be_opened() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    link = ModbusLink(ModbusTarget(scheme="tcp", host="127.0.0.1", port=port), device_id=1, timeout=0.3, name="Meter")
    with pytest.raises(SourceError, match=rf"^cannot open tcp://127\.0\.0\.1:{port}"):
        await link.connect()
    assert not link.connected
