"""Enphase IQ Gateway (Envoy) source: the endpoints enphase-monitor reads, over one persistent HTTPS link.

Per poll: a token (cached, see envoy_token), then ``ivp/ensemble/relay`` (the grid relay: closed = OL, open =
OB, anything else is no answer), ``ivp/livedata/status`` (state of charge; a failure keeps the last one) and,
unless the meters are off, ``ivp/meters/reports`` (a failure keeps the last reports). Once per connection:
``info.xml`` (firmware), ``ivp/ensemble/secctrl`` (where the battery restarts) and, from the live data, the
phase count and the battery's energy.

The gateway's certificate is self-signed: this client alone accepts it, for the configured host only; the
cloud login is verified as usual. A 401 renews the token once, then counts as a failed poll; a 429 is
honoured (not asked again before its Retry-After, see http_source). Unlike
enphase-monitor, a failed login is a failed poll (the port file goes to nocomms after the grace, the login
backs off), never the end of the process; and timeouts come from the config, while the monitor's retries
within the poll and its grace do what enphase-monitor's one curl retry did against spurious nocomms.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx

from nutbridge.errors import ProtocolError, SourceError
from nutbridge.model import DeviceInfo
from nutbridge.nut.enphase import MFR, MODEL, TABLE, GatewayReading, Meter
from nutbridge.sources.envoy_token import TokenCache
from nutbridge.sources.http_source import HttpSource, num

log = logging.getLogger(__name__)

MAX_ANSWER = 1024 * 1024
SOFTWARE = re.compile(r"<software>([^<]{1,64})</software>")


def gateway_tls() -> ssl.SSLContext:
    """A client context for the gateway's self-signed certificate: encrypted, but not verified."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def meter(row: object) -> Meter:
    """A meter row; a missing or null value is 0, as enphase-monitor reads it."""
    fields = row if isinstance(row, dict) else {}

    def value(key: str) -> float:
        return num(fields.get(key)) or 0.0

    return Meter(value("currW"), value("apprntPwr"), value("rmsVoltage"), value("pwrFactor"), value("freqHz"))


def meter_group(reports: list[Any], kind: str, phases: int | None) -> tuple[Meter, ...] | None:
    """The cumulative row of the report ``kind`` and, for 3 phases, its lines."""
    report = next((r for r in reports if isinstance(r, dict) and r.get("reportType") == kind), None)
    if report is None:
        return None
    lines = report.get("lines")
    lines = lines if isinstance(lines, list) else []
    rows = [meter(report.get("cumulative"))]
    if phases == 3:
        rows += [meter(line) for line in lines[:3]]
    return tuple(rows)


class EnvoySource(HttpSource):
    """The gateway at ``host``; ``transport`` replaces the network (TEST mode's fixtures)."""

    TABLE = TABLE

    def __init__(
        self,
        host: str,
        *,
        serial: str,
        tokens: TokenCache,
        timeout: float = 10.0,
        meters: bool = True,
        load_kwh: float = 768.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(timeout, clock=clock)
        self.host = host
        self.serial = serial
        self.tokens = tokens
        self.meters = meters
        self.load_kwh = load_kwh
        self._transport = transport
        self._info: DeviceInfo | None = None
        self._soc: float | None = None
        self._soc_text: str | None = None
        self._phases: int | None = None
        self._pv: float | None = None
        self._reports: list[Any] | None = None

    def __str__(self) -> str:
        return f"Enphase IQ Gateway {self.host} (serial {self.serial})"

    @property
    def info(self) -> DeviceInfo | None:
        return self._info

    async def aclose(self) -> None:
        await super().aclose()
        await self.tokens.aclose()

    async def reset(self) -> None:
        """Drop the link and read the gateway's settings again at the next poll."""
        await self.drop_link()
        self._info = None

    def make_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"https://{self.host}",
            verify=gateway_tls(),
            timeout=self._timeout,
            headers={"Accept": "application/json"},
            transport=self._transport,
        )

    async def get(self, path: str) -> str:
        """GET ``path`` with the token; a 401 renews the token once. SourceError when there is no answer (and
        RateLimited after a 429, until its Retry-After has passed)."""
        for renewed in (False, True):
            token = await (self.tokens.renew() if renewed else self.tokens.get())
            response = await self.request(f"/{path}", headers={"Authorization": f"Bearer {token}"})
            if response.status_code == 401:
                if renewed:
                    raise SourceError(f"{self}: {path}: the token was refused again after renewal (HTTP 401)")
                log.info("%s refused the token (401): renewing it", self)
                continue
            if response.status_code != 200:
                raise SourceError(f"{self}: {path}: HTTP {response.status_code}")
            if len(response.content) > MAX_ANSWER:
                raise ProtocolError(f"{self}: {path}: answer over {MAX_ANSWER // 1024} KiB")
            return response.text
        raise AssertionError("unreachable: the second answer returns or raises")

    async def get_json(self, path: str) -> Any:
        text = await self.get(path)
        try:
            return json.loads(text)
        except ValueError:
            raise ProtocolError(f"{self}: {path}: not JSON") from None

    async def read(self) -> GatewayReading:
        relay = await self.get_json("ivp/ensemble/relay")
        state = relay.get("mains_oper_state") if isinstance(relay, dict) else None
        if state not in ("closed", "open"):
            raise ProtocolError(f"{self}: the relay's mains_oper_state is {state!r}, not closed or open")
        live = await self.optional("ivp/livedata/status")
        meters = live.get("meters") if isinstance(live, dict) else None
        if isinstance(meters, dict):
            pv = meters.get("pv")
            milliwatts = num(pv.get("agg_p_mw")) if isinstance(pv, dict) else None
            self._pv = None if milliwatts is None else milliwatts / 1000
            soc = meters.get("soc")
            if isinstance(soc, int | float | str) and not isinstance(soc, bool):
                try:
                    self._soc, self._soc_text = float(soc), str(soc)
                except ValueError:
                    log.warning("%s: live data soc %r is no number", self, soc)
        if self._info is None:
            await self.read_settings(meters if isinstance(meters, dict) else {})
        if self.meters:
            reports = await self.optional("ivp/meters/reports")
            if isinstance(reports, list):
                self._reports = reports
        return self.reading(on_line=state == "closed")

    async def optional(self, path: str) -> Any:
        """A query whose failure keeps the last values (as enphase-monitor's): None when it failed."""
        try:
            return await self.get_json(path)
        except SourceError as exc:
            log.debug("%s", exc)
            return None

    async def read_settings(self, live: dict[str, Any]) -> None:
        """Once per connection: firmware, where the battery restarts, the phase count and the energy."""
        firmware = None
        try:
            found = SOFTWARE.search(await self.get("info.xml"))
            firmware = found.group(1) if found else None
        except SourceError as exc:
            log.debug("%s", exc)
        secctrl = await self.optional("ivp/ensemble/secctrl")
        restart = secctrl.get("soc_recovery_exit") if isinstance(secctrl, dict) else None
        energy = live.get("enc_agg_energy")
        self._phases = 3 if live.get("phase_count") == 3 else None
        self._info = DeviceInfo(
            mfr=MFR,
            model=MODEL,
            firmware=firmware,
            battery_type="LFP",
            serial=self.serial,
            battery_energy=num(energy),
            battery_charge_restart=num(restart),
        )

    def reading(self, *, on_line: bool) -> GatewayReading:
        reports = self._reports if self.meters else None
        grid = None if reports is None else meter_group(reports, "net-consumption", self._phases)
        load = None if reports is None else meter_group(reports, "total-consumption", self._phases)
        storage_rows = None if reports is None else meter_group(reports, "storage", None)
        storage = storage_rows[0] if storage_rows else None
        return GatewayReading(
            time=time.time(),
            battery_charge=self._soc,
            charge_text=self._soc_text,
            on_line=on_line,
            battery_current=storage.watts / storage.volts if storage and storage.volts else None,
            load_power=load[0].watts if load else None,
            pv_power=self._pv,
            grid=grid,
            load=load,
            storage=storage,
            phases=self._phases,
            load_kwh=self.load_kwh,
        )
