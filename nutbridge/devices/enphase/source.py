"""Enphase IQ Gateway (Envoy) source: the endpoints enphase-monitor reads, over one persistent HTTPS link.

Per poll: a token (cached, see envoy_token), then ``ivp/ensemble/relay`` (the grid relay: closed = OL, open =
OB, anything else is no answer; a firmware without it is read from ``ivp/ensemble/status``'s relay),
``ivp/livedata/status`` (state of charge; without it, ``ivp/ensemble/secctrl``'s agg_soc) and, unless the
meters are off, ``ivp/meters/reports`` (without it, ``ivp/meters/readings`` by ``ivp/meters``' types); a failure
keeps the last values. Once per connection: ``info.xml`` (firmware), ``ivp/ensemble/secctrl`` (where the
battery restarts, and its maximum energy: the capacity) and ``ivp/ensemble/inventory`` (whether there is a
battery at all: a gateway without one reports a charge of 0).

Signs are the gateway's: a meter's power is positive where energy flows into the site from the grid
(net-consumption) or out of the battery (storage), so a charging battery reads negative (recorded:
8.2.4286's storage meter -7083.656 W beside 7131 W of PV; its ensemble power -1324000 mW a battery).

The gateway's certificate is self-signed: this client alone accepts it, for the configured host only; the
cloud login is verified as usual. A 401 renews the token once, then counts as a failed poll; a 429 is
honoured (not asked again before its Retry-After, see devices/http.py); any other 4xx is a definite answer
(``Refused``: not asked again within the poll; an endpoint answered 404 is not asked again on this
connection, and a missing endpoint that nutbridge needs is named once, with the firmware). Unlike
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

from nutbridge.devices.enphase.model import MFR, MODEL, GatewayReading, Meter
from nutbridge.devices.enphase.token import TokenCache
from nutbridge.devices.http import HttpSource, num
from nutbridge.errors import ProtocolError, Refused, SourceError
from nutbridge.model import DeviceInfo

log = logging.getLogger(__name__)

MAX_ANSWER = 1024 * 1024
SOFTWARE = re.compile(r"<software>([^<]{1,64})</software>")


def gateway_tls() -> ssl.SSLContext:
    """A client context for the gateway's self-signed certificate: encrypted, but not verified."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


RELAY, STATUS, LIVE, SECCTRL = (
    "ivp/ensemble/relay",
    "ivp/ensemble/status",
    "ivp/livedata/status",
    "ivp/ensemble/secctrl",
)
REPORTS, METERS, READINGS = "ivp/meters/reports", "ivp/meters", "ivp/meters/readings"
INVENTORY, INFO = "ivp/ensemble/inventory", "info.xml"
# a meter row's fields (watts, volt-amperes, volts, power factor, hertz) in ivp/meters/reports and in readings
REPORT_KEYS = ("currW", "apprntPwr", "rmsVoltage", "pwrFactor", "freqHz")
READING_KEYS = ("activePower", "apparentPower", "voltage", "pwrFactor", "freq")
Groups = dict[str, tuple[Meter, ...]]  # meter rows by report type: the cumulative row, then each line


def meter(row: object, keys: tuple[str, ...] = REPORT_KEYS) -> Meter:
    """A meter row; a missing or null value is 0, as enphase-monitor reads it (a -0.0 stays one, as there)."""
    fields = row if isinstance(row, dict) else {}
    values = [num(fields.get(key)) for key in keys]
    return Meter(*(0.0 if v is None else v for v in values))


def rows(cumulative: object, lines: object, keys: tuple[str, ...]) -> tuple[Meter, ...]:
    """The cumulative row and up to three lines."""
    return (meter(cumulative, keys), *(meter(line, keys) for line in (lines if isinstance(lines, list) else [])[:3]))


def report_groups(reports: object) -> Groups:
    """ivp/meters/reports by reportType (net-consumption, total-consumption, storage)."""
    found: Groups = {}
    for report in reports if isinstance(reports, list) else []:
        if isinstance(report, dict) and isinstance(report.get("reportType"), str):
            found.setdefault(report["reportType"], rows(report.get("cumulative"), report.get("lines"), REPORT_KEYS))
    return found


def reading_groups(readings: object, types: dict[object, str]) -> Groups:
    """ivp/meters/readings by the measurementType ivp/meters gives each eid (enabled meters only)."""
    found: Groups = {}
    for row in readings if isinstance(readings, list) else []:
        kind = types.get(row.get("eid")) if isinstance(row, dict) else None
        if kind is not None and isinstance(row, dict):
            found.setdefault(kind, rows(row, row.get("channels"), READING_KEYS))
    return found


def has_battery(inventory: object, secctrl: object) -> bool:
    """Whether the site has a battery: not when the inventory lists no Encharge and secctrl's Max_energy is 0 (as
    every recorded site without one: their gateways still report a charge of 0); AC Batteries are not in
    ivp/ensemble/inventory, but count in Max_energy. When unsure, assume one, as enphase-monitor does."""
    groups = inventory if isinstance(inventory, list) else []
    if any(isinstance(g, dict) and g.get("type") == "ENCHARGE" and g.get("devices") for g in groups):
        return True
    return (num(secctrl.get("Max_energy")) if isinstance(secctrl, dict) else None) != 0


class EnvoySource(HttpSource):
    """The gateway at ``host``; ``transport`` replaces the network (TEST mode's fixtures)."""

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
        self._groups: Groups | None = None
        self._battery = True
        self._meter_types: dict[object, str] | None = None  # ivp/meters: eid → measurementType
        self._missing: set[str] = set()  # endpoints answered 404 on this connection: not asked again
        self._told: set[str] = set()  # missing endpoints already named in the log

    def __str__(self) -> str:
        return f"Enphase IQ Gateway {self.host} (serial {self.serial})"

    @property
    def info(self) -> DeviceInfo | None:
        return self._info

    async def aclose(self) -> None:
        await super().aclose()
        await self.tokens.aclose()

    async def drop_link(self) -> None:
        """Close the link; endpoints found missing are asked again on the next one (the gateway may have been
        updated while it was away)."""
        await super().drop_link()
        self._missing.clear()

    async def reset(self) -> None:
        """Drop the link and read the gateway's settings again at the next poll."""
        await self.drop_link()
        self._info, self._meter_types = None, None

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
            if 400 <= response.status_code < 500:
                if response.status_code == 404:
                    self._missing.add(path)
                raise Refused(
                    f"{self}: {path}: HTTP {response.status_code} {response.reason_phrase} (an answer, not a silence)"
                )
            if response.status_code != 200:
                raise SourceError(f"{self}: {path}: HTTP {response.status_code}")
            if len(response.content) > MAX_ANSWER:
                raise ProtocolError(f"{self}: {path}: answer over {MAX_ANSWER // 1024} KiB")
            self._missing.discard(path)
            return response.text
        raise AssertionError("unreachable: the second answer returns or raises")

    async def get_json(self, path: str) -> Any:
        text = await self.get(path)
        try:
            return json.loads(text)
        except ValueError:
            raise ProtocolError(f"{self}: {path}: not JSON") from None

    async def read(self) -> GatewayReading:
        # settings first, so a missing endpoint is named with the firmware; their secctrl serves this poll too
        secctrl = await self.read_settings() if self._info is None else None
        on_line = await self.grid_relay()
        live = await self.optional(LIVE)
        meters = live.get("meters") if isinstance(live, dict) else None
        meters = meters if isinstance(meters, dict) else {}
        pv = meters.get("pv")
        milliwatts = num(pv.get("agg_p_mw")) if isinstance(pv, dict) else None
        if live is not None:  # a failed query keeps the last values
            self._pv = None if milliwatts is None else milliwatts / 1000
        if meters.get("phase_count") is not None:
            self._phases = 3 if meters.get("phase_count") == 3 else None
        soc = meters.get("soc")
        if soc is None and LIVE in self._missing and self._battery:  # no live data on this firmware: the ensemble's
            secctrl = secctrl if secctrl is not None else await self.optional(SECCTRL)
            soc = secctrl.get("agg_soc") if isinstance(secctrl, dict) else None
        if isinstance(soc, int | float | str) and not isinstance(soc, bool):
            try:
                self._soc, self._soc_text = float(soc), str(soc)
            except ValueError:
                log.warning("%s: the state of charge %r is no number", self, soc)
        if self.meters:
            groups = await self.meter_groups()
            self._groups = self._groups if groups is None else groups
        return self.reading(on_line=on_line)

    async def grid_relay(self) -> bool:
        """The grid relay: True closed (OL), False open (OB); from ivp/ensemble/relay, or on a firmware without it
        (a 404) from ivp/ensemble/status's relay object."""
        relay = await self.answer_or_missing(RELAY)
        if RELAY in self._missing:
            status = await self.answer_or_missing(STATUS)
            relay = status.get("relay") if isinstance(status, dict) else None
            if not isinstance(relay, dict):
                raise self.lacking(RELAY, "to tell on grid (OL) from off grid (OB): an IQ System Controller's relay")
        state = relay.get("mains_oper_state") if isinstance(relay, dict) else None
        if state not in ("closed", "open"):
            raise ProtocolError(f"{self}: the relay's mains_oper_state is {state!r}, not closed or open")
        return bool(state == "closed")

    async def answer_or_missing(self, path: str) -> Any:
        """``path``'s JSON, or None when this firmware has no such endpoint (a 404); any other failure raises.
        Asked every poll, as nutbridge cannot do without it: a firmware update may bring it."""
        try:
            return await self.get_json(path)
        except Refused:
            if path not in self._missing:
                raise
            return None

    def lacking(self, path: str, why: str) -> Refused:
        """The one line saying which endpoint a firmware lacks and what for (logged once), as an error."""
        firmware = self._info.firmware if self._info and self._info.firmware else "unknown"
        message = f"{self} (firmware {firmware}) has no {path} (HTTP 404); nutbridge needs it {why}"
        if path not in self._told:
            self._told.add(path)
            log.error("%s", message)
        return Refused(message)

    async def meter_groups(self) -> Groups | None:
        """The meters by type: ivp/meters/reports, or on a firmware without it ivp/meters/readings. None: failed."""
        reports = await self.optional(REPORTS)
        if REPORTS not in self._missing:  # answered, or failed this time (None: the last values are kept)
            return None if reports is None else report_groups(reports)
        if self._meter_types is None:
            config = await self.optional(METERS)
            found = [m for m in config if isinstance(m, dict)] if isinstance(config, list) else []
            self._meter_types = {
                m.get("eid"): str(m.get("measurementType")) for m in found if m.get("state") == "enabled"
            }
            if self._phases is None and any(m.get("phaseCount") == 3 for m in found):
                self._phases = 3
        readings = await self.optional(READINGS)
        return None if readings is None else reading_groups(readings, self._meter_types)

    async def optional(self, path: str) -> Any:
        """A query whose failure keeps the last values (as enphase-monitor's): None when it failed. An endpoint
        this firmware answered 404 is not asked again on this connection."""
        if path in self._missing:
            return None
        try:
            return await self.get_json(path)
        except SourceError as exc:
            log.log(logging.INFO if path in self._missing else logging.DEBUG, "%s", exc)
            return None

    async def read_settings(self) -> dict[str, Any]:
        """Once per connection: firmware, where the battery restarts, its capacity, and whether there is one.

        The capacity is secctrl's Max_energy, the batteries' full energy: livedata's enc_agg_energy (what
        enphase-monitor takes) is the energy stored now (secctrl's ENC_agg_avail_energy is agg_soc × Max_energy
        in every recorded answer, e.g. 8.1.41: 92 % of 9920 Wh = 9176 Wh)."""
        firmware = None
        if INFO not in self._missing:
            try:
                found = SOFTWARE.search(await self.get(INFO))
                firmware = found.group(1) if found else None
            except SourceError as exc:
                log.debug("%s", exc)
        secctrl = await self.optional(SECCTRL)
        secctrl = secctrl if isinstance(secctrl, dict) else {}
        self._battery = has_battery(await self.optional(INVENTORY), secctrl)
        if not self._battery:
            self._soc = self._soc_text = None
            log.info("%s: no battery in its inventory: no battery.* variable is written, and never LB", self)
        maximum = num(secctrl.get("Max_energy"))
        self._info = DeviceInfo(
            mfr=MFR,
            model=MODEL,
            firmware=firmware,
            battery_type="LFP" if self._battery else None,
            serial=self.serial,
            battery_energy=maximum if maximum and self._battery else None,
            battery_charge_restart=num(secctrl.get("soc_recovery_exit")),
        )
        return secctrl

    def reading(self, *, on_line: bool) -> GatewayReading:
        groups = self._groups if self.meters else None
        grid = None if groups is None else groups.get("net-consumption")
        load = None if groups is None else groups.get("total-consumption")
        storage = None if groups is None or not self._battery else groups.get("storage", (None,))[0]
        return GatewayReading(
            time=time.time(),
            battery_charge=self._soc if self._battery else None,
            charge_text=self._soc_text if self._battery else None,
            on_line=on_line,
            # + while charging (nutbridge's sign): the gateway's storage meter reads negative then
            battery_current=-storage.watts / storage.volts if storage and storage.volts else None,
            load_power=load[0].watts if load else None,
            pv_power=self._pv,
            grid=grid,
            load=load,
            storage=storage,
            phases=self._phases,
            load_kwh=self.load_kwh,
            battery=self._battery,
        )
