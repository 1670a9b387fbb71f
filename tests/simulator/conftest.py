"""A simulated Tracer whose clock stands still unless a test moves it (``advance``), and pymodbus' own client
talking to it over a real loopback socket, as nutbridge's devices/modbus_link.py does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ModbusPDU

from nutbridge.simulator.physics import Mode, Plant
from nutbridge.simulator.server import SimulatedTracer

LOAD_REGISTERS = 0x310C  # load voltage, current, power L/H
STATUS = 0x3200  # battery, charging, discharging status


def frame(text: str) -> tuple[int, list[int]]:
    """The address and values of an FC10 request frame as the reference prints it (RTU, without the CRC):
    ``01 10 90 3D 00 03 06 00 02 02 00 02 00``."""
    data = bytes.fromhex(text)
    assert data[1] == 0x10 and data[6] == 2 * int.from_bytes(data[4:6]), text
    words = data[7:]
    return int.from_bytes(data[2:4]), [int.from_bytes(words[i : i + 2]) for i in range(0, len(words), 2)]


@dataclass
class Unit:
    """The simulated controller (``sim``, its ``plant``) and a client connected to it."""

    sim: SimulatedTracer
    client: AsyncModbusTcpClient

    @property
    def plant(self) -> Plant:
        return self.sim.plant

    async def holding(self, address: int, count: int = 1) -> list[int]:
        reply = await self.client.read_holding_registers(address, count=count, device_id=1)
        assert not reply.isError(), reply
        return list(reply.registers)

    async def write(self, address: int, values: Sequence[int]) -> ModbusPDU:
        """FC10 (write multiple registers)."""
        return await self.client.write_registers(address, list(values), device_id=1)

    async def write_single(self, address: int, value: int) -> ModbusPDU:
        """FC06 (write single register)."""
        return await self.client.write_register(address, value, device_id=1)

    async def coil(self, on: bool | None = None) -> bool:
        """Coil 2 (manual load control): written with FC05 when ``on`` is given, then read back with FC01."""
        if on is not None:
            assert not (await self.client.write_coil(2, on, device_id=1)).isError()
        reply = await self.client.read_coils(2, count=1, device_id=1)
        assert not reply.isError(), reply
        return bool(reply.bits[0])

    async def status(self) -> tuple[int, bool]:
        """0x3200 D3-D0 (battery voltage state) and 0x3202 D0 (the load runs)."""
        reply = await self.client.read_input_registers(STATUS, count=3, device_id=1)
        assert not reply.isError(), reply
        return reply.registers[0] & 0xF, bool(reply.registers[2] & 1)

    async def load_registers(self) -> list[int]:
        """0x310C-0x310F: load voltage, current, power L/H."""
        reply = await self.client.read_input_registers(LOAD_REGISTERS, count=4, device_id=1)
        assert not reply.isError(), reply
        return list(reply.registers)

    async def battery_volts(self) -> float:
        reply = await self.client.read_input_registers(0x331A, count=1, device_id=1)
        assert not reply.isError(), reply
        return float(reply.registers[0]) / 100

    async def night_input(self) -> bool:
        """Discrete input 0x200C: 1 night."""
        reply = await self.client.read_discrete_inputs(0x200C, count=1, device_id=1)
        assert not reply.isError(), reply
        return bool(reply.bits[0])

    async def make_user_type(self) -> None:
        """Battery type User, the way a real unit takes it: a fixed rated voltage (12 V) first, then the type."""
        assert not (await self.write(0x9067, [1])).isError()
        assert not (await self.write(0x9000, [0])).isError()


@pytest.fixture
async def unit() -> AsyncIterator[Unit]:
    """A simulated Tracer at night (no PV), 70 % charge, its clock still (speed 0), and a client connected to it."""
    sim = SimulatedTracer(Plant(mode=Mode.NIGHT, soc=70), speed=0)
    await sim.start_tcp("127.0.0.1", 0)
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=2, retries=0)
    assert await client.connect()
    yield Unit(sim, client)
    client.close()
    await sim.stop()
