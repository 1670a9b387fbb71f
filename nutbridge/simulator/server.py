"""The simulated Tracer as a pymodbus server: the input blocks of devices/tracer/registers.py and the holding
blocks of holding.py, exception 02 elsewhere (strict, as EPEver's documentation draws a Tracer); a lenient one
also answers the gaps between a table's blocks, with zeros, as some units answer reads across them. Settings
writes (FC10, and FC06 as a one-register FC10) follow EPEver's rules (rules.py): a refusal is exception 04 (02
for an address that is no setting), the registers unchanged, and a warning in the log naming the rule."""

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

from nutbridge.devices.modbus_map import Block, Table, encode
from nutbridge.devices.tracer import registers as tmap
from nutbridge.model import ChargeStage
from nutbridge.simulator import holding
from nutbridge.simulator.physics import Mode, Plant

log = logging.getLogger(__name__)

IDENTITY = {"VendorName": "EPsolar Tech co., Ltd", "ProductCode": "Tracer2210AN", "MajorMinorRevision": "V02.13+V07.21"}
# Rated data of a Tracer2210AN with a 12 V battery; its settings are the plant's (settings.py).
STATIC = {
    "pv_voltage_rated": 100.0,
    "pv_current_rated": 20.0,
    "pv_power_rated": 260.0,
    "load_current_rated": 20.0,
    "battery_voltage_nominal": 12.0,
}
STAGE_BITS = {ChargeStage.OFF: 0, ChargeStage.FLOAT: 1, ChargeStage.BOOST: 2, ChargeStage.EQUALIZE: 3}
LOAD_SHORT = 1 << 8  # 0x3201 D8


def live_values(plant: Plant) -> dict[str, float]:
    """The polled registers' values for the plant's present state."""
    pv_w, volts, output = plant.pv_power(), plant.battery_voltage(), plant.output_on()
    load_w = plant.load_on_w()
    pv_v = plant.pv_voltage()
    charging = (STAGE_BITS[plant.stage()] << 2) | 1 | (0 if pv_w > 0 else 1 << 14)
    if plant.mode is Mode.FAULT:
        charging |= LOAD_SHORT | 0b10
    return {
        "pv_voltage": pv_v,
        "pv_current": pv_w / pv_v,
        "pv_power": pv_w,
        "load_voltage": volts if output else 0.0,  # the load registers read 0 while the terminal is off
        "load_current": load_w / volts,
        "load_power": load_w,
        "battery_temperature": 25.0,
        "controller_temperature": 28.0 + 8 * plant.sun(),
        "battery_charge": round(plant.soc),
        "status_battery": plant.battery_state(),
        "status_charging": charging,
        "status_discharging": 1 if output else 0,  # 0x3202 D0: the load runs
        "battery_voltage_max_today": 13.9,
        "battery_voltage_min_today": 12.3,
        "energy_consumed_today": plant.energy_out_today / 1000,
        "energy_consumed_total": plant.energy_out_total / 1000,
        "energy_generated_today": plant.energy_in_today / 1000,
        "energy_generated_total": plant.energy_in_total / 1000,
        "battery_voltage": volts,
        "battery_current": plant.battery_watts() / volts,
    }


READ_COILS, READ_DISCRETE, WRITE_COIL, WRITE_REGISTER, WRITE_COILS, WRITE_REGISTERS = 1, 2, 5, 6, 15, 16
MASK_WRITE, READ_WRITE = 22, 23  # not in EPEver's documents: refused as illegal functions
LOAD_COIL = 2  # manual control of the load: 1 on, 0 off
NIGHT_INPUT = 0x200C  # discrete input: 1 night
INPUT_START = 0x2000
# What the server serves: the Tracer map's input blocks, and the holding blocks a real unit answers.
SERVED = tuple(b for b in tmap.BLOCKS if b.table == Table.INPUT) + holding.BLOCKS


def block_data(table: Table, words: dict[tuple[Table, int], int], *, lenient: bool = False) -> list[SimData]:
    """One SimData per defined block of ``table``; addresses outside them stay invalid (exception 02). Lenient:
    one SimData from the table's first block to its last, the gaps between them reading zero."""
    blocks: list[Block] = [b for b in SERVED if b.table == table]
    spans = [(blocks[0].address, max(b.end for b in blocks))] if lenient else [(b.address, b.end) for b in blocks]
    return [
        SimData(address=lo, values=[words.get((table, a), 0) for a in range(lo, hi)], datatype=DataType.REGISTERS)
        for lo, hi in spans
    ]


def set_bit(regs: list[int], start: int, address: int, on: bool) -> None:
    """Set bit ``address`` of a bit table that pymodbus keeps 16 to a register, from register ``start``."""
    index, mask = address // 16 - start, 1 << (address % 16)
    regs[index] = regs[index] | mask if on else regs[index] & ~mask


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

    def restart(self) -> None:
        """Restart the simulated controller (settings and clock kept, coil 2 from 0x906A); connections stay up."""
        self._tick()
        self.plant.restart()

    async def _on_access(  # noqa: PLR0917 (pymodbus calls it with six positional arguments)
        self, fc: int, start: int, address: int, count: int, regs: list[int], set_values: object
    ) -> ExcCodes | None:
        """pymodbus calls this before every access: refresh what is read from the plant, apply what is written."""
        self._tick()
        values = set_values if isinstance(set_values, list) and set_values else None
        if fc in (MASK_WRITE, READ_WRITE):
            return ExcCodes.ILLEGAL_FUNCTION
        if fc in (WRITE_REGISTER, WRITE_REGISTERS) and values is not None:
            return self._write(fc, address, [int(v) for v in values])
        if fc in (WRITE_COIL, WRITE_COILS) and values is not None and address <= LOAD_COIL < address + len(values):
            self.plant.load_on = bool(values[LOAD_COIL - address])
        if fc == READ_COILS or (fc in (WRITE_COIL, WRITE_COILS) and values is not None):
            set_bit(regs, start, LOAD_COIL, self.plant.load_on)
        if fc == READ_DISCRETE:
            set_bit(regs, start, NIGHT_INPUT, self.plant.terminal.night)
        if fc == Table.HOLDING:
            for addr in range(address, address + count):
                if addr in holding.ADDRESSES:
                    regs[addr - start] = self.plant.settings.read(addr, self.plant.seconds)
        if fc == Table.INPUT:
            words = encode(tmap.POLL_REGISTERS, live_values(self.plant))
            for (_, addr), word in words.items():
                regs[addr - start] = word
        return None

    def _write(self, fc: int, address: int, values: list[int]) -> ExcCodes | None:
        """A settings write: taken, or refused with the rule in the log and nothing changed."""
        refused = self.plant.write(address, values)
        if refused is None:
            return None
        log.warning("refused FC%02d write of %d register(s) at %#06x, exception %02d: %s",
                    fc, len(values), address, refused.code, refused.rule)  # fmt: skip
        return ExcCodes(refused.code)

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
        static.update({(Table.HOLDING, a): v for a, v in self.plant.settings.snapshot(self.plant.seconds).items()})
        static.update(encode(tmap.POLL_REGISTERS, live_values(self.plant)))
        coils = [i == LOAD_COIL and self.plant.load_on for i in range(16)]
        night = [INPUT_START + i == NIGHT_INPUT and self.plant.terminal.night for i in range(16)]
        return SimDevice(
            id=self.device_id,
            action=self._on_access,
            simdata=(
                [SimData(address=0, values=coils, datatype=DataType.BITS)],
                [SimData(address=INPUT_START, values=night, datatype=DataType.BITS)],
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
