"""Tesla Powerwall through a pyPowerwall proxy (https://github.com/jasonacox/pypowerwall, ``proxy/``), which
handles Tesla's login: nutbridge only speaks plain HTTP GETs to it, over one connection at a time.

Per poll: ``/soe`` (the gateway's state of energy → battery.charge; pypowerwall-server's ``raw_percentage``
where it gives one), ``/api/system_status/grid_status`` (``SystemGridConnected`` → OL, any other gateway state
→ OB) and ``/aggregates`` (the site, load, solar and battery meters). Once per connection: ``/stats`` (the
proxy's version, its cache period, whether it is a Powerwall 3), ``/version`` (the gateway's firmware) and
``/api/system_status`` (the pack's energy, the number of Powerwalls and their power, for battery.runtime and
ups.load); these are optional, a poor answer only leaves values out.

A site without a battery. Where ``/api/system_status`` says so (``available_blocks`` 0 and no pack energy),
``/soe`` is not asked and no battery meter is needed: NUT gets no battery.charge, so never LB. pyPowerwall's
cloud mode answers ``/soe`` 5 % for such a site ((0 + 5/0.95) × 0.95), which would be LB.

The cache rule. pyPowerwall caches every upstream answer for PW_CACHE_EXPIRE seconds (5 by default; the
proxy warns below 5), so asking it sooner only returns the same numbers while adding load on a gateway that
answers 429 with a five-minute cooldown. So the proxy is asked at most once per that period (read from
``/stats``; 5 s if it does not say; never under 1 s). A poll that comes sooner gets the previous answer's
values with a fresh time, and a poll after a failed one gets the same failure. That is the option a user
wants, rather than refusing a short poll_interval at start: the period belongs to the proxy, not to
nutbridge's configuration (it can change without nutbridge's config changing), a short
poll_interval_on_battery stays valid, the port file keeps being refreshed on schedule, and NUT sees
exactly what it would have seen by asking - the proxy would have served its cache.

The failure rule. pyPowerwall answers every GET with HTTP 200: a body of ``null`` (no fresh data),
``TIMEOUT!`` or ``ERROR!`` (the gateway did not answer), an ``{"error": ...}`` object, a web page or text
that is not JSON is a failed poll (ProtocolError), never data; so is any other HTTP status, a missing or
implausible value (a charge outside 0-100 %, a meter without a number), and a grid state that is not one
of the gateway's ``System…`` words (pypowerwall-server answers ``Unknown`` while it has no data: that is not
OB). A refused connection, a timeout or any other transport error is a failed poll too (SourceError), and
so is a 429 from a reverse proxy in front of it, which is not asked again before its Retry-After
(RateLimited, see devices/http.py). pyPowerwall's own server speaks HTTP/1.0 and closes each connection after
its answer; a reverse proxy in front of it may keep one alive, and then it is reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import httpx

from nutbridge.devices.http import HttpSource, num
from nutbridge.devices.powerwall.model import IDLE_WATTS, MFR, MODEL, PACK_WH, PowerwallInfo, PowerwallReading
from nutbridge.errors import ProtocolError, SourceError
from nutbridge.redact import redact_url

log = logging.getLogger(__name__)

DEFAULT_HOLD = 5.0  # s: pyPowerwall's default PW_CACHE_EXPIRE
MIN_HOLD = 1.0  # s: even a proxy that caches nothing is not asked more often
# s: a poll this much early still counts as on time, so a poll_interval equal to the cache period is not
# turned into twice the period by scheduling jitter.
SLACK = 0.2
MAX_ANSWER = 1024 * 1024
GRID_UP = "SystemGridConnected"
# Every grid state the gateway reports starts so (pyPowerwall's list: SystemGridConnected, SystemIslandedActive,
# SystemTransitionToGrid, …); anything else, pypowerwall-server's "Unknown" first, says nothing about the grid.
GRID_WORD = "System"
SOE, GRID, AGGREGATES = "/soe", "/api/system_status/grid_status", "/aggregates"


def snippet(text: str, limit: int = 40) -> str:
    """The start of an answer, for a message."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


class PowerwallSource(HttpSource):
    """A Powerwall behind the pyPowerwall proxy at ``url``; ``clock`` (monotonic seconds) times the cache rule."""

    def __init__(self, url: str, *, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(timeout, clock=clock)
        self.url = url.rstrip("/")
        self._clock = clock
        self._info: PowerwallInfo | None = None
        self.hold = DEFAULT_HOLD  # seconds between two requests for data: the proxy's cache period
        self._asked_at: float | None = None  # when the data was last asked for (``clock``)
        self._last: PowerwallReading | None = None  # its answer, when it was one
        self._failure: SourceError | None = None  # its failure, when it was one
        self._repeated = False  # the one-time notice about polling faster than the proxy refreshes

    def __str__(self) -> str:
        return f"pyPowerwall proxy at {redact_url(self.url)}"

    @property
    def info(self) -> PowerwallInfo | None:
        return self._info

    async def reset(self) -> None:
        """Drop the connection and read the device info again at the next poll. The cache rule stays: the
        proxy's cache does not care about our connection."""
        await self.drop_link()
        self._info = None

    def make_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            headers={"Accept": "application/json"},
        )

    # --- the poll ---

    async def read(self) -> PowerwallReading:
        """One poll, under the cache rule; SourceError (or ProtocolError) when it failed."""
        now = self._clock()
        if self._asked_at is not None and now - self._asked_at < self.hold - SLACK:
            return await self._repeat(now - self._asked_at)
        self._asked_at = now
        self._failure = SourceError(f"{self}: the previous request did not complete")  # until it does
        try:
            async with self._within_timeout():
                if self._info is None:
                    await self.connect()
                reading = await self._fetch()
        except SourceError as exc:
            self._failure = exc
            raise
        self._last, self._failure = reading, None
        return reading

    async def _repeat(self, age: float) -> PowerwallReading:
        """A poll sooner than the proxy refreshes: the last answer with a fresh time, or the last failure."""
        failure = self._failure
        if failure is not None or self._last is None:
            message = f"{failure or 'no answer yet'}; not asked again until its {self.hold:g} s cache refreshes"
            raise (type(failure) if failure else SourceError)(message)
        if self._info is None:  # reset since (SIGHUP): read the device info again, keep the data
            async with self._within_timeout():
                await self.connect()
        if not self._repeated:
            self._repeated = True
            log.info(
                "%s: polled %.1f s after the last request, sooner than the proxy refreshes (every %g s): "
                "repeating its last answer until then",
                self,
                age,
                self.hold,
            )
        return replace(self._last, time=time.time())

    @contextlib.asynccontextmanager
    async def _within_timeout(self) -> AsyncIterator[None]:
        """The time one attempt may take (the source's timeout), as a SourceError when it runs out."""
        try:
            async with asyncio.timeout(self._timeout):
                yield
        except TimeoutError:
            await self.drop_link()  # a late answer must not be read as the next one
            raise SourceError(f"{self}: no complete answer within {self._timeout:g} s") from None

    async def _fetch(self) -> PowerwallReading:
        has_battery = self._info is None or self._info.has_battery
        charge = await self._charge() if has_battery else None
        grid = (await self.get_json(GRID)).get("grid_status")
        if not isinstance(grid, str) or not grid.startswith(GRID_WORD):
            raise ProtocolError(f"{self}: {GRID}: grid_status {grid!r} is not a grid state")
        meters = await self.get_json(AGGREGATES)
        site, load = (self.meter(meters, name) for name in ("site", "load"))
        solar = meters.get("solar")
        pv = num(solar.get("instant_power")) if isinstance(solar, dict) else None
        battery_watts: float | None = None
        current: float | None = None
        if has_battery:
            battery = self.meter(meters, "battery")
            # Tesla's battery meter: + discharging. nutbridge's: + charging (and an idle 0 W stays 0, not −0).
            battery_watts = -self.power(battery, "battery") or 0.0
            volts = num(battery.get("instant_average_voltage"))
            if volts is not None and volts > 0:  # amperes only where the meter says the voltage
                current = 0.0 if abs(battery_watts) < IDLE_WATTS else battery_watts / volts
        return PowerwallReading(
            time=time.time(),
            battery_charge=charge,
            battery_current=current,
            on_line=grid == GRID_UP,
            load_power=self.power(load, "load"),
            pv_power=pv,
            grid_power=self.power(site, "site"),
            battery_power=battery_watts,
        )

    async def _charge(self) -> float:
        """The gateway's own state of energy, 0-100 %. pypowerwall-server 0.4.0 to 0.11.1 answer ``/soe`` with
        the app's scale in ``percentage`` and the gateway's figure in ``raw_percentage``, so that one wins."""
        soe = await self.get_json(SOE)
        key = "raw_percentage" if "raw_percentage" in soe else "percentage"
        if soe.get(key) is None:
            raise ProtocolError(f"{self}: {SOE}: {key} is null: the proxy has no fresh charge")
        charge = num(soe.get(key))
        if charge is None or not 0 <= charge <= 100:
            raise ProtocolError(f"{self}: {SOE}: {key} {soe.get(key)!r} is not a charge of 0-100 %")
        return charge

    def meter(self, meters: dict[str, Any], name: str) -> dict[str, Any]:
        row = meters.get(name)
        if not isinstance(row, dict):
            raise ProtocolError(f"{self}: {AGGREGATES}: no {name} meter")
        return row

    def power(self, row: dict[str, Any], name: str) -> float:
        watts = num(row.get("instant_power"))
        if watts is None:
            raise ProtocolError(
                f"{self}: {AGGREGATES}: the {name} meter's instant_power is {row.get('instant_power')!r}"
            )
        return watts

    # --- once per connection ---

    async def connect(self) -> PowerwallInfo:
        """Read what the proxy says about itself and the installation; fixed names where it says nothing."""
        stats = await self.optional("/stats")
        version = await self.optional("/version")
        status = await self.optional("/api/system_status")
        config = stats.get("config") if isinstance(stats, dict) else None
        expire = config.get("PW_CACHE_EXPIRE") if isinstance(config, dict) else None
        try:
            self.hold = max(MIN_HOLD, float(expire)) if expire is not None else DEFAULT_HOLD
        except (TypeError, ValueError):
            self.hold = DEFAULT_HOLD
        if not math.isfinite(self.hold):
            self.hold = DEFAULT_HOLD
        firmware = version.get("version") if isinstance(version, dict) else None
        status = status if isinstance(status, dict) else {}
        blocks = status.get("available_blocks")
        units = blocks if isinstance(blocks, int) and not isinstance(blocks, bool) and blocks > 0 else None
        full = num(status.get("nominal_full_pack_energy"))
        power = num(status.get("max_discharge_power"))
        site = stats.get("site_name") if isinstance(stats, dict) else None
        proxy = stats.get("pypowerwall") if isinstance(stats, dict) else None
        pw3 = isinstance(stats, dict) and stats.get("pw3") is True
        # No Powerwall only when the proxy says both (0 blocks, no pack energy): a missing or partial answer
        # keeps the battery, so a real one never loses its LB.
        no_battery = blocks == 0 and not isinstance(blocks, bool) and not (full and full > 0)
        self._info = PowerwallInfo(
            mfr=MFR,
            model=f"{MODEL} 3" if pw3 else MODEL,
            firmware=firmware if isinstance(firmware, str) and firmware and firmware != "SolarOnly" else None,
            units=units,
            pack_energy=full if full and full > 0 else (units * PACK_WH if units else None),
            # cloud mode fills this from the site's nameplate_power: with no Powerwall, nothing delivers it
            max_power=power if power and power > 0 and not no_battery else None,
            site_name=site if isinstance(site, str) and site else None,
            proxy=proxy if isinstance(proxy, str) and proxy else None,
            has_battery=not no_battery,
        )
        if no_battery:
            log.info("%s says the site has no Powerwall: no battery.charge, never LB", self)
        elif self._info.pack_energy is None:
            log.info("%s does not say the battery's size: no battery.runtime", self)
        log.debug("%s: %s; asked at most every %g s", self, self._info, self.hold)
        return self._info

    async def optional(self, path: str) -> dict[str, Any] | None:
        """An answer that may be missing or poor (None then); only a link failure fails the poll."""
        try:
            return await self.get_json(path)
        except ProtocolError as exc:
            log.debug("%s", exc)
            return None

    # --- HTTP ---

    async def get_json(self, path: str) -> dict[str, Any]:
        """GET ``path``: its JSON object, or SourceError (no answer) or ProtocolError (an answer that is no data)."""
        response = await self.request(path)
        if response.status_code != 200:
            raise ProtocolError(f"{self}: {path}: HTTP {response.status_code} {response.reason_phrase}".rstrip())
        if len(response.content) > MAX_ANSWER:
            raise ProtocolError(f"{self}: {path}: answer over {MAX_ANSWER // 1024} KiB")
        return self.decode(path, response.text.strip(), response.headers.get("content-type", ""))

    def decode(self, path: str, text: str, content_type: str) -> dict[str, Any]:
        if text in ("", "null"):
            raise ProtocolError(f"{self}: {path}: the proxy has no fresh data (it answered {text or 'nothing'})")
        if text in ("TIMEOUT!", "ERROR!"):
            raise ProtocolError(f"{self}: {path}: the proxy got no answer from the Powerwall (it answered {text})")
        if "html" in content_type.lower() or text.startswith("<"):
            raise ProtocolError(f"{self}: {path}: a web page, not JSON; is this the pyPowerwall proxy's URL?")
        try:
            data = json.loads(text)
        except ValueError:
            raise ProtocolError(f"{self}: {path}: not JSON: {snippet(text)}") from None
        if not isinstance(data, dict):
            raise ProtocolError(f"{self}: {path}: not a JSON object: {snippet(text)}")
        if "error" in data:
            raise ProtocolError(f"{self}: {path}: the proxy answered an error: {snippet(str(data['error']), 80)}")
        return data
