"""A Modbus link any Modbus family reads its device over: the pymodbus client made from a ModbusTarget (RTU, TCP,
RTU over TCP), opened and closed, one planned read (a modbus_map.Request), a coil written and read back, a block of
holding registers written in one request (FC10), and device identification (FC 0x2B); and the one place where
pymodbus's and the OS's errors become ours: SourceError when there is no answer (or the link itself failed),
ProtocolError when the answer is no answer to the request.

No answer drops the link, and so does any failed read: on a serial line that also drops whatever half frame or
garbage a timed-out request left behind, so a late or stray answer is never taken for the next one's. Retries,
backoff and reconnects are the monitor's: the client gets no retries and no automatic reconnect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from nutbridge.devices.modbus import ModbusTarget
from nutbridge.devices.modbus_map import Request, Table
from nutbridge.errors import ProtocolError, SourceError

Client = AsyncModbusTcpClient | AsyncModbusSerialClient


class ModbusLink:
    """One device on a Modbus line or socket, named ``name`` in every message (``Tracer at tcp://host:502 (device
    id 1)``). ``requests`` counts the requests sent, for the figures in bench/."""

    def __init__(self, target: ModbusTarget, *, device_id: int, timeout: float, name: str) -> None:
        self.target = target
        self.device_id = device_id
        self.timeout = timeout
        self.name = name
        self.requests = 0
        self.client: Client | None = None  # None while closed

    def __str__(self) -> str:
        return f"{self.name} at {self.target} (device id {self.device_id})"

    @property
    def connected(self) -> bool:
        """True while the link is open."""
        return self.client is not None and self.client.connected

    def _new_client(self) -> Client:
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

    async def connect(self) -> None:
        """Open a fresh link (closing the one open): SourceError when the socket or serial device cannot be opened."""
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
        self.client = client

    def close(self) -> None:
        """Drop the link (pymodbus closes synchronously); the next ``connect`` opens a fresh one."""
        if self.client is not None:
            self.client.close()
        self.client = None

    def _open(self) -> Client:
        if self.client is None:
            raise SourceError(f"{self}: not connected")
        return self.client

    @contextlib.contextmanager
    def _answer(self, no_answer: str, link_failed: str | None = None) -> Iterator[None]:
        """pymodbus's errors (nothing in time, bytes that are no frame, another device's frame) and the OS's (the
        link itself failed, ``link_failed`` if it says more) as a SourceError naming what was asked; the link is
        dropped, as a late answer could still arrive on it."""
        try:
            yield
        except ModbusException as exc:
            self.close()
            raise SourceError(f"{self}: {no_answer} ({exc})") from exc
        except OSError as exc:
            self.close()
            raise SourceError(f"{self}: {link_failed or no_answer} ({exc})") from exc

    def _refused(self, reply: ModbusPDU, doing: str) -> ProtocolError:
        """An exception reply (``exception 2 reading …``) as a ProtocolError."""
        return ProtocolError(f"{self}: exception {getattr(reply, 'exception_code', '?')} {doing}")

    async def read(self, req: Request) -> list[int]:
        """The registers ``req`` asks for, exactly ``req.count`` of them, or SourceError/ProtocolError; any failure
        drops the link."""
        client = self._open()
        reader = client.read_input_registers if req.table == Table.INPUT else client.read_holding_registers
        self.requests += 1
        at = f"{req.address:#06x}"
        with self._answer(f"no answer reading {at}", f"link failed reading {at}"):
            reply = await reader(req.address, count=req.count, device_id=self.device_id)
        try:
            if reply.isError():
                raise self._refused(reply, f"reading {req.count} registers at {at}")
            if reply.function_code != req.table:  # a well-formed frame, but no answer to this request
                raise ProtocolError(
                    f"{self}: answered function code {reply.function_code} to a read of {req.count} registers "
                    f"at {at} (function code {int(req.table)})"
                )
            registers = list(reply.registers)
            if len(registers) != req.count:
                raise ProtocolError(f"{self}: asked {req.count} registers at {at}, got {len(registers)}")
        except ProtocolError:
            self.close()  # every failed read drops the link: a late or stray answer must not be taken for the next
            raise
        return registers

    async def coil(self, address: int, on: bool | None = None, *, name: str) -> bool:
        """Coil ``address`` (the ``name`` output): switched first when ``on`` is given, then read back. An exception
        reply is a ProtocolError and keeps the link (its frame was whole); no answer drops it."""
        client = self._open()
        self.requests += 2 if on is not None else 1
        with self._answer(f"no answer about the {name} output"):
            if on is not None:
                written = await client.write_coil(address, on, device_id=self.device_id)
                if written.isError():
                    raise self._refused(written, f"writing the {name} coil")
            reply = await client.read_coils(address, count=1, device_id=self.device_id)
        if reply.isError() or not reply.bits:
            raise self._refused(reply, f"reading the {name} coil")
        return bool(reply.bits[0])

    async def write(self, address: int, values: Sequence[int]) -> None:
        """``values`` into the holding registers from ``address`` in one request (FC10: EPEver's settings are
        checked against each other, so a block is never split). An exception reply (the controller refused it,
        nothing changed) is a ProtocolError and keeps the link; no answer drops it."""
        client = self._open()
        self.requests += 1
        at = f"{address:#06x}"
        with self._answer(f"no answer writing {len(values)} registers at {at}", f"link failed writing at {at}"):
            reply = await client.write_registers(address, list(values), device_id=self.device_id)
        if reply.isError():
            raise self._refused(reply, f"writing {len(values)} registers at {at}")

    async def identify(self) -> tuple[str | None, str | None, str | None]:
        """Vendor, product code and revision from Read Device Identification (FC 0x2B); None for each the device
        does not give (an exception reply: it does not support it)."""
        client = self._open()
        self.requests += 1
        with self._answer("no answer to device identification"):
            reply = await client.read_device_information(device_id=self.device_id)
        info: dict[int, Any] = {} if reply.isError() else dict(getattr(reply, "information", {}))

        def text(key: int) -> str | None:
            raw = info.get(key)
            value = raw.decode("ascii", "replace").strip() if isinstance(raw, bytes) else None
            return value or None

        return text(0), text(1), text(2)
