"""``GET /api/v1/opendata.php`` and ``/api/v2/opendata.php`` as Solar Protocol's main branch runs them, byte for byte.

v1's opendata.php is chargecontroller.php's successor, which v1's own scripts call (``getRemoteData.py`` asks
every node for ``day=4``, ``clientPostIP.py`` its own node for ``systemInfo=tz``): the same plain-text answers,
plus ``networkInfo`` (``deviceList``, ``tz``, ``poe``, ``timestamp``, ``dump``: the device list's fields) and
``server`` (the peers' data that ``getRemoteData.py`` cached, by name, number or ``all``), which it looks at
before any other key. v2 wraps the same answers in JSON (``{"PV-voltage":"13.33"}``), drops the header row
from series and days and adds the time zone; ``runner.py``, the admin page's network plot and the API guide
pages call it. Where the originals leak or break, these do not (README, "Legacy API"): ``server=`` serves
only the files of nodes in the device list (the original reads any path, ``server=../access`` included) and
no input gives a 500.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from nutbridge.datalog.format import Column
from nutbridge.server import php
from nutbridge.server.legacy import MAX_FILES, ROUTE_KEYS, VALUE_NOT_FOUND, ChargeController, answer, value_query

NETWORK_FIELDS = {"deviceList": "name", "tz": "tz", "poe": "log", "timestamp": "time stamp"}


def unescaped(value: Any) -> str:
    """``json_encode($value, JSON_UNESCAPED_SLASHES)``."""
    return php.json_encode(value, unescaped_slashes=True)


class OpenDataV1(ChargeController):
    """v1's opendata.php: chargecontroller.php's answers, ``server`` first, the device list's fields."""

    async def handle(self, request: web.Request) -> web.Response:
        server = php.get_params(request.query.items()).get("server") if request.method == "GET" else None
        if server is not None:  # looked at before any other key
            return answer(await asyncio.to_thread(self.network.server, server))
        return await super().handle(request)

    def day(self, day: php.Param, params: Mapping[str, php.Param]) -> str:
        if day == "deviceList":  # opendata.php no longer serves the raw list at all
            return ""
        return super().day(day, params)

    def system_info(self, info: php.Param, params: Mapping[str, php.Param]) -> str:
        if info == "dump":  # opendata.php encodes it with JSON_UNESCAPED_SLASHES, chargecontroller.php without
            return unescaped(json.loads(super().system_info(info, params)))
        return super().system_info(info, params)

    def network_info(self, info: php.Param, params: Mapping[str, php.Param]) -> str:
        if isinstance(info, list):
            return ""
        if info == "dump":
            return unescaped(self.network.dump())
        key = NETWORK_FIELDS.get(info)
        return php.json_encode(self.network.field(key)) if key else ""


class OpenDataV2(ChargeController):
    """v2's opendata.php: every answer JSON, series and days newest first without their header rows."""

    async def handle(self, request: web.Request) -> web.Response:
        params = php.get_params(request.query.items()) if request.method == "GET" else {}
        if "server" in params and not any(key in params for key in ROUTE_KEYS):  # looked at after every other key
            return answer(await asyncio.to_thread(self.network.server_v2, params["server"]))
        return await super().handle(request)

    def value(self, value: php.Param, params: Mapping[str, php.Param]) -> str:
        query = value_query(value, params)
        if query is None or isinstance(value, list):
            return VALUE_NOT_FOUND
        column, scaled, count = query
        if count:
            return self.memo(("v2 value", value), count, lambda: self.series_v2(value, column, count))
        cell = self.cache.newest_cell(column)
        out: Any = "" if cell is None else cell
        if scaled and cell is not None:  # a number in the JSON, as PHP's arithmetic makes one
            scaler = self.node.wattage_scaler()
            out = php.multiply(cell, scaler) if php.is_numeric(cell) else ""
        return php.json_encode({value: out})

    def series_v2(self, value: str, column: str, count: int) -> str:
        series: dict[str, str | None] = {}
        for rows in self.newest(count):
            header = rows[0] if rows else []
            position = header.index(column) if column in header else len(header)
            for row in reversed(rows[1:]):
                series[row[0]] = row[position] if position < len(row) else None
        return unescaped({"header": {Column.DATETIME: value}, "data": series, "timezone": self.tz})

    def line(self, line: php.Param, params: Mapping[str, php.Param]) -> str:
        rows = self.cache.rows(self.cache.today())
        if not rows:
            return ""
        if isinstance(line, list):  # an array is above 0 and never below count($rows): nothing set
            return "null"
        if line in ("len", "head"):
            return php.json_encode({line: len(rows) - 1 if line == "len" else list(rows[0])})
        if php.compare(line, 0) >= 0 and php.compare(line, len(rows)) < 0:
            index = php.array_key(len(rows) - 1 - php.leading_number(line))
            row = rows[index] if 0 <= index < len(rows) else []
            cells = {name.replace(" ", "-"): row[p] if p < len(row) else None for p, name in enumerate(rows[0])}
            return unescaped({line: cells, "timezone": self.tz})
        return "null"  # PHP encodes the answer it never set

    def day(self, day: php.Param, params: Mapping[str, php.Param]) -> str:
        if isinstance(day, list):
            return self.memo(("v2 day",), 1, lambda: self.days_v2(1)) if day else ""
        if day in ("list", "len"):
            names = self.cache.names()
            return php.json_encode({day: names if day == "list" else len(names)})
        if 1 <= php.intval(day) <= MAX_FILES:
            count = php.intval(day)
            return self.memo(("v2 day",), count, lambda: self.days_v2(count))
        if day == "deviceList":
            return ""
        return super().day(day, params)

    def days_v2(self, count: int) -> str:
        header: list[str] = []
        data: list[list[str]] = []
        for rows in self.newest(count):
            if rows:
                header = list(rows[0])
            data.extend(list(row) for row in reversed(rows[1:]))
        return unescaped({"header": header, "data": data, "timezone": self.tz})

    def system_info(self, info: php.Param, params: Mapping[str, php.Param]) -> str:
        if isinstance(info, list):
            return ""
        if info == "tz":
            return unescaped({"tz": self.tz})
        if info == "dump":
            return unescaped({"dump": json.loads(super().system_info(info, params))})
        if info == "wattage-scaler":
            return php.json_encode({info: self.node.wattage_scaler()})
        key = {"color": "bgColor", "pvVoltage": "pvVolts"}.get(info, info)
        if info not in ("description", "name", "location", "city", "country", "pvWatts", "color", "pvVoltage"):
            return ""
        return php.json_encode({info: self.node.info.get(key)})

    def network_info(self, info: php.Param, params: Mapping[str, php.Param]) -> str:
        if isinstance(info, list):
            return ""
        if info == "dump":
            return unescaped({"dump": self.network.dump()})
        key = NETWORK_FIELDS.get(info)
        return php.json_encode({info: self.network.field(key)}) if key else ""
