"""The simulated Tracer as a pymodbus server: the blocks of devices/tracer/registers.py, exception 02 elsewhere
(strict, as EPEver's documentation draws a Tracer); a lenient one also answers the gaps between a table's blocks,
with zeros, as some units answer reads across them."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Self, cast

from pymodbus import FramerType, ModbusDeviceIdentification
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from nutbridge.devices.modbus_map import Table, encode
from nutbridge.devices.tracer import registers as tmap
from nutbridge.model import ChargeStage
from nutbridge.simulator.physics import Mode, Plant

log = logging.getLogger(__name__)

IDENTITY = {"VendorName": "EPsolar Tech co., Ltd", "ProductCode": "Tracer2210AN", "MajorMinorRevision": "V02.13+V07.21"}
# Rated data and settings of a Tracer2210AN with a 12 V 100 Ah sealed battery.
STATIC = {
    "pv_voltage_rated": 100.0,
    "pv_current_rated": 20.0,
    "pv_power_rated": 260.0,
    "load_current_rated": 20.0,
    "battery_voltage_nominal": 12.0,
    "battery_type": 1,
    "battery_capacity": 100,
    "battery_voltage_high": 15.0,
    "battery_voltage_low": 12.0,
}
SETTINGS_9000 = [1, 100, 300, 1600, 1500, 1500, 1460, 1440, 1380, 1320, 1260, 1220, 1200, 1110, 1060]
STAGE_BITS = {ChargeStage.OFF: 0, ChargeStage.FLOAT: 1, ChargeStage.BOOST: 2, ChargeStage.EQUALIZE: 3}
LOAD_SHORT = 1 << 8  # 0x3201 D8


def live_values(plant: Plant) -> dict[str, float]:
    """The polled registers' values for the plant's present state."""
    pv_w, volts = plant.pv_power(), plant.battery_voltage()
    load_w = plant.load_on_w()
    pv_v = 18.0 + 2.0 * plant.sun() if pv_w > 0 else 0.4
    battery_state = 3 if plant.soc <= 1 else 2 if plant.soc < 15 else 0
    charging = (STAGE_BITS[plant.stage()] << 2) | 1 | (0 if pv_w > 0 else 1 << 14)
    if plant.mode is Mode.FAULT:
        charging |= LOAD_SHORT | 0b10
    return {
        "pv_voltage": pv_v,
        "pv_current": pv_w / pv_v,
        "pv_power": pv_w,
        "load_voltage": volts if load_w else 0.0,
        "load_current": load_w / volts,
        "load_power": load_w,
        "battery_temperature": 25.0,
        "controller_temperature": 28.0 + 8 * plant.sun(),
        "battery_charge": round(plant.soc),
        "status_battery": battery_state,
        "status_charging": charging,
        "status_discharging": 1 if load_w else 0,
        "battery_voltage_max_today": 13.9,
        "battery_voltage_min_today": 12.3,
        "energy_consumed_today": plant.energy_out_today / 1000,
        "energy_consumed_total": plant.energy_out_total / 1000,
        "energy_generated_today": plant.energy_in_today / 1000,
        "energy_generated_total": plant.energy_in_total / 1000,
        "battery_voltage": volts,
        "battery_current": plant.battery_watts() / volts,
    }


WRITE_COIL = 5
LOAD_COIL = 2  # manual control of the load: 1 on, 0 off (the load starts on)


def block_data(table: Table, words: dict[tuple[Table, int], int], *, lenient: bool = False) -> list[SimData]:
    """One SimData per defined block of ``table``; addresses outside them stay invalid (exception 02). Lenient:
    one SimData from the table's first block to its last, the gaps between them reading zero."""
    blocks = [b for b in tmap.BLOCKS if b.table == table]
    spans = [(blocks[0].address, max(b.end for b in blocks))] if lenient else [(b.address, b.end) for b in blocks]
    return [
        SimData(address=lo, values=[words.get((table, a), 0) for a in range(lo, hi)], datatype=DataType.REGISTERS)
        for lo, hi in spans
    ]


class SimulatedTracer:
    """A pymodbus server backed by a Plant. ``speed`` runs the simulated clock faster than real time; ``lenient``
    answers reads across the gaps between blocks. Given a list, ``reads`` gets every register read asked of it,
    answered or refused, as (function code, address, count): what a test counts a poll's requests by (None, the
    default, keeps none: a simulator may serve for days)."""

    def __init__(
        self, plant: Plant | None = None, *, speed: float = 1.0, device_id: int = 1, lenient: bool = False
    ) -> None:
        self.plant = plant or Plant()
        self.speed = speed
        self.device_id = device_id
        self.lenient = lenient
        self.reads: list[tuple[int, int, int]] | None = None
        self._last = time.monotonic()
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self.port = 0  # the TCP port, once listening

    def _tick(self) -> None:
        now = time.monotonic()
        self.plant.advance((now - self._last) * self.speed)
        self._last = now

    async def _on_access(  # noqa: PLR0917 (pymodbus calls it with six positional arguments)
        self, fc: int, start: int, address: int, count: int, regs: list[int], set_values: object
    ) -> ExcCodes | None:
        """pymodbus calls this before every access: refresh the live registers from the plant."""
        if fc == WRITE_COIL and address == LOAD_COIL and isinstance(set_values, list) and set_values:
            self._tick()
            self.plant.load_on = bool(set_values[0])
        if fc == Table.INPUT:
            self._tick()
            words = encode(tmap.POLL_REGISTERS, live_values(self.plant))
            for (_, addr), word in words.items():
                regs[addr - start] = word
        return None

    def _on_packet(self, sending: bool, data: bytes) -> bytes:
        """Silent (and hang) drops every reply; garbage replaces it with noise of the same length."""
        if sending and self.plant.mode in (Mode.SILENT, Mode.HANG):
            return b""
        if sending and self.plant.mode is Mode.GARBAGE:
            return os.urandom(len(data))
        return data

    def _on_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        """Each register read received goes in ``reads``, if it is a list."""
        if self.reads is not None and not sending and pdu.function_code in (Table.HOLDING, Table.INPUT):
            self.reads.append((pdu.function_code, pdu.address, pdu.count))
        return pdu

    def device(self) -> SimDevice:
        """The SimDevice: four separate tables, as on a real Tracer."""
        static = encode(tmap.INFO_REGISTERS, STATIC)
        static.update({(Table.HOLDING, 0x9000 + i): v for i, v in enumerate(SETTINGS_9000)})
        static.update(encode(tmap.POLL_REGISTERS, live_values(self.plant)))
        return SimDevice(
            id=self.device_id,
            action=self._on_access,
            simdata=(
                [SimData(address=0, values=[i == LOAD_COIL for i in range(16)], datatype=DataType.BITS)],
                [SimData(address=0x2000, values=[False] * 16, datatype=DataType.BITS)],
                block_data(Table.HOLDING, static, lenient=self.lenient),
                block_data(Table.INPUT, static, lenient=self.lenient),
            ),
        )

    def _identity(self) -> ModbusDeviceIdentification:
        return ModbusDeviceIdentification(info_name=IDENTITY)  # type: ignore[no-untyped-call]

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0, *, rtu: bool = False) -> int:
        """Listen on TCP (MBAP framing, or raw RTU frames like a transparent gateway); return the port."""
        self._server = ModbusTcpServer(
            self.device(),
            address=(host, port),
            framer=FramerType.RTU if rtu else FramerType.SOCKET,
            identity=self._identity(),
            trace_packet=self._on_packet,
            trace_pdu=self._on_pdu,
        )
        await self._server.serve_forever(background=True)
        listener = cast(asyncio.Server, self._server.transport)  # pymodbus listens through an asyncio.Server
        self.port = int(listener.sockets[0].getsockname()[1])
        return self.port

    async def start_serial(self, device: str, baudrate: int = 115200) -> None:
        """Serve RTU on a serial device (a pty from socat, say)."""
        self._server = ModbusSerialServer(
            self.device(),
            port=device,
            framer=FramerType.RTU,
            baudrate=baudrate,
            identity=self._identity(),
            trace_packet=self._on_packet,
            trace_pdu=self._on_pdu,
        )
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        """Stop serving and close every connection."""
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
