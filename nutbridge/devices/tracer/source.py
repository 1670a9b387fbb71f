"""EPEver Tracer charge controller over Modbus (devices/modbus_link.py): RTU, TCP, or RTU over TCP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from nutbridge.devices.modbus import ModbusTarget
from nutbridge.devices.modbus_link import ModbusLink
from nutbridge.devices.modbus_map import Register, Request, Table, coalesced, decode, plan
from nutbridge.devices.tracer import registers as tmap
from nutbridge.errors import ProtocolError, SourceError
from nutbridge.model import DeviceInfo, Reading

log = logging.getLogger(__name__)

LOAD_COIL = 2  # manual control of the load output

POLL_PLAN = plan(tmap.POLL_REGISTERS, tmap.BLOCKS)
COALESCED_PLAN = coalesced(POLL_PLAN)  # across the undocumented gaps: fewer reads, if the unit answers them
INFO_PLAN = plan(tmap.INFO_REGISTERS, tmap.BLOCKS)
DEFAULT_MFR = "EPEVER"
DEFAULT_MODEL = "Tracer"


class TracerSource:
    """Reads a Tracer. ``connect`` (re)opens the link and reads rated data; ``read`` polls it.

    Any failure closes the link (the link's rule), so the next attempt starts clean and reads rated data again.
    ``coalesce``: True reads the poll in COALESCED_PLAN's reads, False in POLL_PLAN's gap-free ones; None (auto)
    tries COALESCED_PLAN on the first poll of each connection and, if any of its reads fails, reads POLL_PLAN in
    the same poll and from then on.
    """

    def __init__(
        self, target: ModbusTarget, *, device_id: int = 1, timeout: float = 1.0, coalesce: bool | None = False
    ) -> None:
        self.link = ModbusLink(target, device_id=target.device_id or device_id, timeout=timeout, name="Tracer")
        self.timeout = timeout
        self.coalesce = coalesce
        self._probed = False  # auto: the coalesced reads were answered on this connection
        self._exchange = asyncio.Lock()  # a poll and a load switch never interleave on the line
        self._info: DeviceInfo | None = None

    def __str__(self) -> str:
        return str(self.link)

    @property
    def target(self) -> ModbusTarget:
        """Where the Tracer is."""
        return self.link.target

    @property
    def device_id(self) -> int:
        """Its Modbus device id."""
        return self.link.device_id

    @property
    def requests(self) -> int:
        """Modbus requests sent, for the figures in bench/."""
        return self.link.requests

    @property
    def info(self) -> DeviceInfo | None:
        """Rated data and identification, read over the open link; None once it drops (read again on the next)."""
        return self._info if self.link.client is not None else None

    @property
    def connected(self) -> bool:
        """True while a link is open and rated data has been read over it."""
        return self.link.connected and self.info is not None

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

    async def connect(self) -> DeviceInfo:
        """Open the link and read rated data and battery settings."""
        self.close()
        await self.link.connect()
        self._probed = False
        try:
            values = await self._read_plan(INFO_PLAN, tmap.INFO_REGISTERS)
            mfr, model, firmware = await self.link.identify()
        except SourceError:
            self.close()
            raise
        kind = int(values["battery_type"])
        self._info = DeviceInfo(
            mfr=mfr or DEFAULT_MFR,
            model=model or DEFAULT_MODEL,
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
            battery_voltage_disconnect=values["battery_voltage_disconnect"] or None,
            battery_voltage_reconnect=values["battery_voltage_reconnect"] or None,
            battery_voltage_low_recover=values["battery_voltage_low_recover"] or None,
            load_control=tmap.LOAD_CONTROL_MODES.get(int(values["load_control"]), "other"),
        )
        return self._info

    def close(self) -> None:
        """Drop the link; the next ``connect`` opens a fresh one."""
        self.link.close()
        self._info = None

    async def read(self) -> Reading:
        """One full poll: real-time data, status bits, today's statistics and the battery block."""
        async with self._exchange:
            return await self._poll()

    async def _poll(self) -> Reading:
        if not self.connected:
            await self.connect()
        try:
            values = await self._read_poll()
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
            if not self.connected:
                await self.connect()
            return await self.link.coil(LOAD_COIL, on, name="load")

    @contextlib.asynccontextmanager
    async def settings_link(self) -> AsyncIterator[ModbusLink]:
        """The open link, for the power cycle's settings writes (cycle.py), with no poll between them."""
        async with self._exchange:
            if not self.link.connected:
                await self.link.connect()
            yield self.link

    async def _read_poll(self) -> dict[str, float]:
        """The poll's registers, in the reads ``coalesce`` and the probe decided."""
        if self.coalesce is False:
            return await self._read_plan(POLL_PLAN, tmap.POLL_REGISTERS)
        if self.coalesce is None and not self._probed:
            return await self._probe()
        try:
            return await self._read_plan(COALESCED_PLAN, tmap.POLL_REGISTERS)
        except ProtocolError as exc:
            if self.coalesce is None:
                raise  # this connection's probe passed: a failure now is the link's, not the span's
            hint = "coalesce = true reads across the register map's gaps, which this unit refuses"
            raise ProtocolError(f"{exc}: {hint}; set coalesce = auto or false in [source]") from exc

    async def _probe(self) -> dict[str, float]:
        """Auto, on a connection's first poll: the coalesced reads, or, if any fails, the gap-free ones from now
        on, starting with this poll (a refused probe costs no poll)."""
        try:
            values = await self._read_plan(COALESCED_PLAN, tmap.POLL_REGISTERS)
        except SourceError as exc:
            self._fall_back(str(exc))
        except asyncio.CancelledError:  # the poll's deadline came first: a unit that never answers the span
            self._fall_back(f"{self}: no answer to a coalesced read before the poll's deadline")
            raise
        else:
            self._probed = True
            return values
        await self.link.connect()  # the failed read dropped it; the rated data read moments ago still holds
        return await self._read_plan(POLL_PLAN, tmap.POLL_REGISTERS)

    def _fall_back(self, why: str) -> None:
        """Gap-free reads for the rest of the process, said once."""
        self.coalesce = False
        log.info(
            "%s; reading the %d gap-free blocks instead of %d coalesced reads from now on "
            "(coalesce = false in [source] skips this probe)",
            why,
            len(POLL_PLAN),
            len(COALESCED_PLAN),
        )

    async def _read_plan(self, requests: Sequence[Request], registers: Sequence[Register]) -> dict[str, float]:
        words: dict[tuple[Table, int], int] = {}
        for req in requests:
            for offset, word in enumerate(await self._read(req)):
                words[req.table, req.address + offset] = word
        return decode(registers, words)

    async def _read(self, req: Request) -> Sequence[int]:
        """One planned read over the link (capture's RecordingTracer keeps what it returns)."""
        return await self.link.read(req)
