"""``GET /api/v1/chargecontroller.php`` as Solar Protocol's network runs it (its main branch), byte for byte.

Every answer is a 200 with ``Content-Type: text/html; charset=UTF-8`` and no trailing newline, odd queries
included: old peers and the Solar Protocol front end parse exactly these bodies. The first key present wins:
``value`` > ``line`` > ``day`` > ``systemInfo`` > ``networkInfo``. Where the original leaks or breaks, this
does not (README, "Legacy API"): ``day=`` serves only real log files, ``day=deviceList`` is not served, and no
input gives a 500.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from pathlib import Path

from aiohttp import web

from nutbridge.datalog.format import DAY_PREFIX, Column, Row
from nutbridge.datalog.reader import DayCache
from nutbridge.node import Node, local_zone
from nutbridge.peers.devices import DeviceList
from nutbridge.server import php
from nutbridge.server.network_files import NetworkFiles

CONTENT_TYPE = "text/html; charset=UTF-8"
# PHP's allow-list for ``value=``, as it is (a name twice, v1's old charge-* names no column has): v1's wire
# vocabulary, not the data log's columns; a value is looked up in the file's own header with "-" as " "
VALUES = (
    "PV-current",
    "PV-current",
    "PV-power-H",
    "PV-power-L",
    "PV-voltage",
    "battery-percentage",
    "battery-voltage",
    "charge-current",
    "charge-power-H",
    "charge-power-L",
    "load-current",
    "load-power",
    "load-voltage",
    "datetime",
    "scaled-wattage",
)
VALUE_NOT_FOUND = (
    "Value not found. Acceptable values: PV-current, PV-current, PV-power-H,PV-power-L, PV-voltage, "
    "battery-percentage, battery-voltage, charge-current, charge-power-H, charge-power-L, load-current, "
    "load-power, load-voltage, datetime, scaled-wattage"
)
MAX_FILES = 7
ROUTE_KEYS = ("value", "line", "day", "systemInfo", "networkInfo")  # the first one present wins
MAX_BODIES = 64  # encoded multi-day answers kept; a new week's worth clears them
# systemInfo=… → the local.json key it echoes
SYSTEM_INFO = {
    "color": "bgColor",
    "description": "description",
    "name": "name",
    "location": "location",
    "city": "city",
    "country": "country",
    "pvWatts": "pvWatts",
    "pvVoltage": "pvVolts",
}


def key_matches(given: str, expected: str | None) -> bool:
    """The network key, compared in constant time; no key configured means no key is right."""
    if expected is None:
        return False
    try:
        return hmac.compare_digest(given.encode(), expected.encode())
    except UnicodeEncodeError:  # bytes that are not UTF-8 (kept as surrogates) cannot be the key
        return False


class Encoded(str):
    """An answer's text that carries its UTF-8 bytes, encoded once: a memoised week (~170-400 KB) is not encoded
    again for each request that reads it."""

    data: bytes

    def __new__(cls, text: str) -> Encoded:
        self = super().__new__(cls, text)
        self.data = text.encode()
        return self


def answer(body: str) -> web.Response:
    """A 200 as PHP sends it."""
    data = body.data if isinstance(body, Encoded) else body.encode()
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE, "Access-Control-Allow-Origin": "*"})


class ChargeController:
    """The handler, reading the data log through ``cache``, the device list and peers' data through ``network``."""

    def __init__(
        self,
        cache: DayCache,
        *,
        devices: DeviceList | None = None,
        network_key: str | None = None,
        node: Node | None = None,
        tz: str | None = None,
        peer_data: Path | None = None,
    ) -> None:
        self.cache = cache
        self.devices = devices
        self.network = NetworkFiles(devices, peer_data)
        self.network_key = network_key
        self.node = node or Node({})
        self._bodies: dict[tuple[object, ...], Encoded] = {}
        self.tz = tz or local_zone()

    async def handle(self, request: web.Request) -> web.Response:
        """Dispatch on the first key present, as the original does."""
        if request.method != "GET":
            return answer("")
        params = php.get_params(request.query.items())
        routes = (self.value, self.line, self.day, self.system_info, self.network_info)
        for key, route in zip(ROUTE_KEYS, routes, strict=True):
            if key in params:
                return answer(route(params[key], params))
        return answer("")

    def newest(self, count: int) -> list[list[Row]]:
        """The ``count`` newest day files' rows, newest first (``count`` counts files, not days)."""
        return [self.cache.rows(name) or [] for name in self.newest_names(count)]

    def newest_names(self, count: int) -> list[str]:
        names = self.cache.names()
        return names[::-1][: max(0, count)]

    def memo(self, key: tuple[object, ...], count: int, build: Callable[[], str]) -> str:
        """A multi-day answer, encoded once per version of the files it reads (a week is ~400 KB of JSON)."""
        full = (*key, self.cache.version(self.newest_names(count)))
        body = self._bodies.get(full)
        if body is None:
            if len(self._bodies) >= MAX_BODIES:
                self._bodies.clear()
            body = self._bodies[full] = Encoded(build())
        return body

    def value(self, value: php.Param, params: Mapping[str, php.Param]) -> str:
        query = value_query(value, params)
        if query is None:
            return VALUE_NOT_FOUND
        column, scaled, count = query
        if count:
            return self.memo(("value", column), count, lambda: self.series(column, count))
        cell = self.cache.newest_cell(column)
        if cell is None:
            return ""
        if scaled:
            scaler = self.node.wattage_scaler()  # None scales to 0, as PHP's null does
            return php.echo_float(php.leading_number(cell) * (scaler or 0)) if php.is_numeric(cell) else ""
        return cell

    def series(self, column: str, count: int) -> str:
        """JSON object timestamp → value; each file's header row first, so the first key is "datetime".

        The original never scales here (its test compares against a dashed name): neither do we.
        """
        series: dict[str, str | None] = {}
        for rows in self.newest(count):
            header = rows[0] if rows else []
            position = header.index(column) if column in header else len(header)
            for row in rows:
                series[row[0]] = row[position] if position < len(row) else None
        return php.json_encode(series)

    def line(self, line: php.Param, params: Mapping[str, php.Param]) -> str:
        rows = self.cache.rows(self.cache.today())
        if not rows or isinstance(line, list):  # PHP 8: an array is never below count($rows)
            return ""
        if line == "len":
            return str(len(rows) - 1)
        if line == "head":
            return php.json_encode(rows[0])
        if php.compare(line, 0) >= 0 and php.compare(line, len(rows)) < 0:
            # PHP's float offset: truncated, wrapped past 64 bits; an offset with no row (line=1000abc passes
            # the string comparison) is null, so every cell is null
            index = php.array_key(len(rows) - 1 - php.leading_number(line))
            row = rows[index] if 0 <= index < len(rows) else []
            return php.json_encode({name: row[p] if p < len(row) else None for p, name in enumerate(rows[0])})
        return ""

    def day(self, day: php.Param, params: Mapping[str, php.Param]) -> str:
        names = self.cache.names()
        if isinstance(day, list):  # intval() of a non-empty array is 1
            return self.memo(("day",), 1, lambda: php.json_encode(self.newest(1))) if day else ""
        if day == "list":
            return php.json_encode(names)
        if day == "len":
            return str(len(names))
        if 1 <= php.intval(day) <= MAX_FILES:
            count = php.intval(day)
            return self.memo(("day",), count, lambda: php.json_encode(self.newest(count)))
        if DAY_PREFIX in day:
            # The original reads any path containing "tracerData": we read only a log file by its name.
            rows = self.cache.named(day)
            return "false" if rows is None else php.json_encode(rows)
        if day == "deviceList":  # the original hands out every peer's IP and MAC here to anyone: we ask for the key
            given = params.get("api_key", "")
            if self.devices is None or not isinstance(given, str) or not key_matches(given, self.network_key):
                return ""
            return raw_list(self.devices)
        return ""

    def system_info(self, info: php.Param, params: Mapping[str, php.Param]) -> str:
        if isinstance(info, list):
            return ""
        node = self.node.info
        if info == "tz":
            return self.tz
        if info == "wattage-scaler":
            return php.echo(self.node.wattage_scaler())
        if info == "dump":
            return php.json_encode(
                {
                    "timezone": self.tz,
                    "color": node.get("bgColor"),
                    **{k: node.get(k) for k in ("name", "description", "location", "city", "country")},
                    "wattage-scaler": self.node.wattage_scaler(),
                    "pvWatts": node.get("pvWatts"),
                    "pvVolts": node.get("pvVolts"),
                }
            )
        key = SYSTEM_INFO.get(info)
        return php.echo(node.get(key)) if key else ""

    def network_info(self, info: php.Param, params: Mapping[str, php.Param]) -> str:
        return php.json_encode(self.network.field("name")) if info == "deviceList" else ""


def value_query(value: php.Param, params: Mapping[str, php.Param]) -> tuple[str, bool, int] | None:
    """``value=`` as the original takes it: the column (``scaled-wattage`` reads ``PV power L``), whether it is
    scaled, and how many files ``duration`` asks for (0: today's newest row); None for a value not allowed."""
    if isinstance(value, list) or value not in VALUES:
        return None
    column = value.replace("-", " ")
    scaled = column == "scaled wattage"
    duration = php.intval_param(params["duration"]) if "duration" in params else 0
    return (Column.PV_POWER_L if scaled else column), scaled, min(duration, MAX_FILES) if duration else 0


def raw_list(devices: DeviceList) -> str:
    """The device list file as stored, with the stamps it still holds (v1 echoes the file itself)."""
    return devices.text()
