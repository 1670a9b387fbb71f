"""EPEver Tracer charge controller over Modbus (pymodbus async client): RTU, TCP, or RTU over TCP."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from nutbridge.devices.modbus import ModbusTarget
from nutbridge.devices.tracer import registers as tmap
from nutbridge.errors import ProtocolError, SourceError
from nutbridge.model import DeviceInfo, Reading

log = logging.getLogger(__name__)

LOAD_COIL = 2  # manual control of the load output

POLL_PLAN = tmap.plan(tmap.POLL_REGISTERS)
INFO_PLAN = tmap.plan(tmap.INFO_REGISTERS)
DEFAULT_MFR = "EPEVER"
DEFAULT_MODEL = "Tracer"


class TracerSource:
    """Reads a Tracer. ``connect`` (re)opens the link and reads rated data; ``read`` polls it.

    Any failure closes the link, so the next attempt starts clean: on a serial line that also drops
    whatever half frame or garbage a timed-out request left behind.
    """

    def __init__(self, target: ModbusTarget, *, device_id: int = 1, timeout: float = 1.0) -> None:
        self.target = target
        self.device_id = target.device_id or device_id
        self.timeout = timeout
        self.requests = 0  # Modbus requests sent, for the figures in bench/
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._exchange = asyncio.Lock()  # a poll and a load switch never interleave on the line
        self.info: DeviceInfo | None = None

    def __str__(self) -> str:
        return f"Tracer at {self.target} (device id {self.device_id})"

    @property
    def connected(self) -> bool:
        """True while a link is open and rated data has been read over it."""
        return self._client is not None and self._client.connected and self.info is not None

    async def __aenter__(self) -> TracerSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close for good (pymodbus closes synchronously; the async form is the sources' common shape)."""
        self.close()

    async def reset(self) -> None:
        """Drop the link; the next read reconnects and reads device info again."""
        self.close()

    def _new_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        t = self.target
        framer = FramerType.RTU if t.rtu_framing else FramerType.SOCKET
        # retries=0 and no automatic reconnect: the monitor owns retry, backoff and reconnect.
        if t.scheme == "rtu":
            return AsyncModbusSerialClient(
                t.device,
                framer=framer,
                baudrate=t.baudrate,
                bytesize=t.bytesize,
                parity=t.parity,
                stopbits=t.stopbits,
                timeout=self.timeout,
                retries=0,
                reconnect_delay=0,
            )
        return AsyncModbusTcpClient(
            t.host, port=t.port, framer=framer, timeout=self.timeout, retries=0, reconnect_delay=0
        )

    async def connect(self) -> DeviceInfo:
        """Open the link and read rated data and battery settings."""
        self.close()
        client = self._new_client()
        try:
            ok = await client.connect()
        except (ModbusException, OSError) as exc:
            client.close()
            raise SourceError(f"cannot open {self.target}: {exc}") from exc
        if not ok:
            client.close()
            raise SourceError(f"cannot open {self.target}")
        self._client = client
        try:
            values = await self._read_plan(INFO_PLAN, tmap.INFO_REGISTERS)
            mfr, model, firmware = await self._identify()
        except SourceError:
            self.close()
            raise
        kind = int(values["battery_type"])
        self.info = DeviceInfo(
            mfr=mfr,
            model=model,
            firmware=firmware,
            battery_type=tmap.BATTERY_TYPES.get(kind, "other"),
            battery_capacity=values["battery_capacity"] or None,
            battery_voltage_nominal=values["battery_voltage_nominal"] or None,
            battery_voltage_low=values["battery_voltage_low"] or None,
            battery_voltage_high=values["battery_voltage_high"] or None,
            pv_voltage_rated=values["pv_voltage_rated"] or None,
            pv_current_rated=values["pv_current_rated"] or None,
            pv_power_rated=values["pv_power_rated"] or None,
            load_current_rated=values["load_current_rated"] or None,
        )
        return self.info

    def close(self) -> None:
        """Drop the link; the next ``connect`` opens a fresh one."""
        if self._client is not None:
            self._client.close()
        self._client = None
        self.info = None

    async def read(self) -> Reading:
        """One full poll: real-time data, status bits, today's statistics and the battery block."""
        async with self._exchange:
            return await self._poll()

    async def _poll(self) -> Reading:
        if not self.connected:
            await self.connect()
        try:
            values = await self._read_plan(POLL_PLAN, tmap.POLL_REGISTERS)
        except SourceError:
            self.close()
            raise
        stage, low, faults = tmap.decode_status(values)
        soc = values["battery_charge"]
        if not 0 <= soc <= 100:
            self.close()
            raise ProtocolError(f"{self}: implausible battery charge {soc:g} %")
        fields: dict[str, Any] = {
            r.field: values[r.field] for r in tmap.POLL_REGISTERS if not r.field.startswith("status_")
        }
        return Reading(time=time.time(), charge_stage=stage, battery_low=low, faults=faults, **fields)

    async def load_output(self, on: bool | None = None) -> bool:
        """The load output (coil 2, manual control): switched first when ``on`` is given, then read back.

        Only effective in manual load mode (0x903D = 0), as the controller's manual says; the read-back tells.
        """
        async with self._exchange:
            return await self._switch(on)

    async def _switch(self, on: bool | None) -> bool:
        if not self.connected:
            await self.connect()
        client = self._client
        assert client is not None
        self.requests += 2 if on is not None else 1
        try:
            if on is not None:
                written = await client.write_coil(LOAD_COIL, on, device_id=self.device_id)
                if written.isError():
                    raise ProtocolError(
                        f"{self}: exception {getattr(written, 'exception_code', '?')} writing the load coil"
                    )
            reply = await client.read_coils(LOAD_COIL, count=1, device_id=self.device_id)
            if reply.isError() or not reply.bits:
                raise ProtocolError(f"{self}: exception {getattr(reply, 'exception_code', '?')} reading the load coil")
        except (ModbusException, OSError) as exc:
            self.close()
            raise SourceError(f"{self}: no answer about the load output ({exc})") from exc
        return bool(reply.bits[0])

    async def _read_plan(
        self, requests: Sequence[tmap.Request], registers: Sequence[tmap.Register]
    ) -> dict[str, float]:
        words: dict[tuple[tmap.Table, int], int] = {}
        for req in requests:
            for offset, word in enumerate(await self._read(req)):
                words[req.table, req.address + offset] = word
        return tmap.decode(registers, words)

    async def _read(self, req: tmap.Request) -> Sequence[int]:
        client = self._client
        if client is None:
            raise SourceError(f"{self}: not connected")
        reader = client.read_input_registers if req.table == tmap.Table.INPUT else client.read_holding_registers
        self.requests += 1
        try:
            try:
                reply = await reader(req.address, count=req.count, device_id=self.device_id)
            except ModbusException as exc:
                raise SourceError(f"{self}: no answer reading {req.address:#06x} ({exc})") from exc
            except OSError as exc:
                raise SourceError(f"{self}: link failed reading {req.address:#06x} ({exc})") from exc
            if reply.isError():
                raise ProtocolError(
                    f"{self}: exception {getattr(reply, 'exception_code', '?')} "
                    f"reading {req.count} registers at {req.address:#06x}"
                )
            if reply.function_code != req.table:  # a well-formed frame, but no answer to this request
                raise ProtocolError(
                    f"{self}: answered function code {reply.function_code} to a read of {req.count} registers "
                    f"at {req.address:#06x} (function code {int(req.table)})"
                )
            registers = list(reply.registers)
            if len(registers) != req.count:
                raise ProtocolError(f"{self}: asked {req.count} registers at {req.address:#06x}, got {len(registers)}")
        except SourceError:
            self.close()  # every failure drops the link: a late or stray answer must not be taken for the next
            raise
        return registers

    async def _identify(self) -> tuple[str, str, str | None]:
        """Vendor, model and firmware from Read Device Identification (FC 0x2B); defaults if unsupported."""
        client = self._client
        if client is None:
            raise SourceError(f"{self}: not connected")
        self.requests += 1
        try:
            reply = await client.read_device_information(device_id=self.device_id)
        except ModbusException as exc:
            raise SourceError(f"{self}: no answer to device identification ({exc})") from exc
        info: dict[int, Any] = {} if reply.isError() else dict(getattr(reply, "information", {}))

        def text(key: int) -> str | None:
            raw = info.get(key)
            value = raw.decode("ascii", "replace").strip() if isinstance(raw, bytes) else None
            return value or None

        return text(0) or DEFAULT_MFR, text(1) or DEFAULT_MODEL, text(2)
