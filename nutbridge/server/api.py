"""The JSON API for new clients: real status codes, JSON errors, an OpenAPI document that matches the routes.

``/api/status`` and ``/health`` answer from the live snapshot; ``/api/readings`` from the data log;
``/api/devices`` from the device list, behind the network key (``Authorization: Bearer KEY`` or
``X-Network-Key``). Solar Protocol's unfinished v3 names (``/api/charge-controller?days=N``, ``/api/system``)
are accepted too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from nutbridge.datalog import HEADER, day_file
from nutbridge.model import Reading
from nutbridge.peers.devices import DeviceError, DeviceList, validate
from nutbridge.peers.node import Node
from nutbridge.server.daycache import DayCache
from nutbridge.server.legacy import key_matches
from nutbridge.server.live import LiveSnapshot
from nutbridge.snapshot import Comms

STALE_AFTER = 3  # polls: an answer older than this many intervals is stale
MAX_DAYS = 31
DEVICE_FIELDS = ("mac", "ip", "stamp", "name", "tz", "log")


def reply(data: Any, status: int = 200) -> web.Response:
    """A JSON answer."""
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, separators=(",", ":")))


def error(status: int, reason: str) -> web.Response:
    """A JSON error with its reason."""
    return reply({"error": reason}, status)


def reading_json(reading: Reading) -> dict[str, Any]:
    """A Reading as JSON: its fields, SI units, the charge stage by name."""
    data = {name: getattr(reading, name) for name in reading.__slots__}
    data["charge_stage"] = None if reading.charge_stage is None else reading.charge_stage.value
    data["faults"] = list(reading.faults)
    return data


def iso(t: float | None) -> str | None:
    """A wall-clock time for people: ISO 8601 with the zone."""
    return None if t is None else dt.datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


class JsonApi:
    """The JSON routes; ``live`` is None when the daemon does not poll (--no-poll)."""

    def __init__(
        self,
        cache: DayCache,
        *,
        live: LiveSnapshot | None,
        devices: DeviceList | None,
        network_key: str | None,
        node: Node,
    ) -> None:
        self.cache, self.live, self.devices, self.network_key, self.node = cache, live, devices, network_key, node

    def routes(self, app: web.Application) -> None:
        """Add the routes to ``app``."""
        app.router.add_get("/api/status", self.status)
        app.router.add_get("/health", self.health)
        app.router.add_get("/api/readings", self.readings)
        app.router.add_get("/api/charge-controller", self.readings)  # Solar Protocol v3's name
        app.router.add_get("/api/devices", self.get_devices)
        app.router.add_post("/api/devices", self.post_devices)
        app.router.add_get("/api/system", self.system)  # Solar Protocol v3's name
        app.router.add_get("/api/openapi.json", self.openapi)

    def freshness(self) -> tuple[bool, str]:
        """(fresh, reason): fresh while the newest poll answered and the last good one is recent."""
        live = self.live
        if live is None:
            return False, "this node does not poll a device (--no-poll)"
        if live.latest is None or live.last_good is None:
            return False, "no poll has answered yet"
        if live.latest.comms is Comms.LOST:
            return False, f"comms lost: {live.latest.error}"
        age = time.time() - live.last_good.time
        if age > STALE_AFTER * live.interval:
            return False, f"the last good poll is {age:.0f} s old"
        return True, "ok"

    async def status(self, request: web.Request) -> web.Response:
        """Every NUT variable, the reading, its age and the comms state."""
        live = self.live
        if live is None or live.last_good is None:
            return error(503, self.freshness()[1])
        good, latest = live.last_good, live.latest or live.last_good
        reading = good.reading
        return reply(
            {
                "comms": latest.comms.value,
                "fresh": self.freshness()[0],
                "time": iso(latest.time),
                "last_good": iso(good.time),
                "age": round(time.time() - good.time, 3),
                "error": None if latest.error is None else str(latest.error),
                "variables": dict(good.variables),
                "reading": None
                if reading is None
                else {k: getattr(reading, k) for k in reading.__slots__ if k != "charge_stage"}
                | {"charge_stage": None if reading.charge_stage is None else reading.charge_stage.value},
            }
        )

    async def health(self, request: web.Request) -> web.Response:
        """200 when fresh; 503 with the reason when stale, in nocomms, or not polling."""
        fresh, reason = self.freshness()
        return reply({"status": "ok"} if fresh else {"status": "unhealthy", "reason": reason}, 200 if fresh else 503)

    async def readings(self, request: web.Request) -> web.Response:
        """History from the data log: ``from``/``to`` dates (or v3's ``days``), ``fields``, ``step`` seconds."""
        q = request.query
        try:
            today = dt.date.today()
            if "days" in q:
                days = int(q["days"])
                if not 1 <= days <= MAX_DAYS:
                    raise ValueError(f"days: 1-{MAX_DAYS}")
                first, last = today - dt.timedelta(days=days - 1), today
            else:
                first = dt.date.fromisoformat(q.get("from", today.isoformat()))
                last = dt.date.fromisoformat(q.get("to", today.isoformat()))
            if last < first or (last - first).days >= MAX_DAYS:
                raise ValueError(f"from/to: at most {MAX_DAYS} days, from before to")
            fields = q["fields"].split(",") if q.get("fields") else list(HEADER[1:])
            unknown = [f for f in fields if f not in HEADER[1:]]
            if unknown:
                raise ValueError(f"fields: unknown {', '.join(unknown)}; known: {', '.join(HEADER[1:])}")
            step = float(q.get("step", "0"))
            if not 0 <= step <= 86400:
                raise ValueError("step: seconds, 0-86400")
        except (ValueError, KeyError) as exc:
            return error(400, f"bad query: {exc}")
        return reply({"fields": ["datetime", *fields], "rows": self.rows(first, last, fields, step)})

    def rows(self, first: dt.date, last: dt.date, fields: list[str], step: float) -> list[list[str]]:
        out: list[list[str]] = []
        bucket = None
        day = first
        while day <= last:
            rows = self.cache.rows(day_file(self.cache.folder, day).name) or []
            if rows:
                index = [rows[0].index(f) for f in fields]
                for row in rows[1:]:
                    if step:
                        try:
                            slot = int(dt.datetime.fromisoformat(row[0]).timestamp() // step)
                        except ValueError:
                            continue
                        if slot == bucket:
                            continue
                        bucket = slot
                    out.append([row[0], *(row[i] for i in index)])
            day += dt.timedelta(days=1)
        return out

    def authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        given = (
            header.removeprefix("Bearer ") if header.startswith("Bearer ") else request.headers.get("X-Network-Key", "")
        )
        return key_matches(given, self.network_key)

    async def get_devices(self, request: web.Request) -> web.Response:
        """The device list (network key required)."""
        if not self.authorized(request):
            return error(401, "the network key is missing or wrong")
        if self.devices is None:
            return reply([])
        try:
            devices = await asyncio.to_thread(self.devices.read)
        except DeviceError as exc:
            return error(503, str(exc))
        return reply([d.as_json() for d in devices])

    async def post_devices(self, request: web.Request) -> web.Response:
        """Add or update a device from a JSON object (network key required); answers the list."""
        if not self.authorized(request):
            return error(401, "the network key is missing or wrong")
        if self.devices is None:
            return error(503, "this node keeps no device list")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return error(400, "the body is not JSON")
        if not isinstance(body, Mapping):
            return error(400, "the body must be a JSON object with mac, ip, stamp, name, tz, log")
        fields = {
            k: v if k == "log" else str(v) for k, v in body.items() if k in ("mac", "ip", "stamp", "name", "tz", "log")
        }
        try:
            devices, _ = await asyncio.to_thread(self.devices.upsert, validate(fields))
        except DeviceError as exc:
            return error(400, str(exc))
        return reply([d.as_json() for d in devices])

    async def system(self, request: web.Request) -> web.Response:
        """This node's identity (local.json's keys) and its wattage scaler."""
        return reply({**self.node.info, "wattage-scaler": self.node.wattage_scaler()})

    async def openapi(self, request: web.Request) -> web.Response:
        """The OpenAPI document of these routes."""
        return reply(OPENAPI)


def op(summary: str, *codes: int, params: tuple[dict[str, Any], ...] = (), body: bool = False) -> dict[str, Any]:
    """One OpenAPI operation: its summary, parameters and the status codes it answers."""
    doc: dict[str, Any] = {
        "summary": summary,
        "responses": {str(c): {"description": DESCRIPTIONS[c], "content": {"application/json": {}}} for c in codes},
    }
    if params:
        doc["parameters"] = list(params)
    if body:
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    return doc


def query(name: str, kind: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind}, "description": description}


DESCRIPTIONS = {200: "OK", 400: "a bad query or body, with its reason", 401: "no or a wrong network key",
                503: "not available now, with its reason"}  # fmt: skip
READINGS = op(
    "History from the data log",
    200,
    400,
    params=(
        query("from", "string", "first local date, YYYY-MM-DD (default today)"),
        query("to", "string", "last local date, YYYY-MM-DD (default today)"),
        query("days", "integer", "the last N days, today included (instead of from/to)"),
        query("fields", "string", "comma-separated column names of the day files"),
        query("step", "number", "keep the first row of each step seconds"),
    ),
)
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "nutbridge API", "version": "1"},
    "components": {
        "securitySchemes": {"networkKey": {"type": "http", "scheme": "bearer"}},
    },
    "paths": {
        "/api/status": {"get": op("NUT variables, reading, age and comms state", 200, 503)},
        "/health": {"get": op("200 when fresh, 503 with a reason when stale or in nocomms", 200, 503)},
        "/api/readings": {"get": READINGS},
        "/api/charge-controller": {"get": READINGS},
        "/api/devices": {
            "get": {**op("The device list", 200, 401, 503), "security": [{"networkKey": []}]},
            "post": {**op("Add or update a device", 200, 400, 401, 503, body=True), "security": [{"networkKey": []}]},
        },
        "/api/system": {"get": op("This node's identity", 200)},
        "/api/openapi.json": {"get": op("This document", 200)},
    },
}
