"""The JSON API for new clients: real status codes, JSON errors, an OpenAPI document that matches the routes.

``/api/status`` and ``/health`` answer from the live snapshot; ``/api/readings`` from the data log;
``/api/devices`` from the device list, behind the network key (``Authorization: Bearer KEY`` or
``X-Network-Key``). Solar Protocol's unfinished v3 names (``/api/charge-controller?days=N``, ``/api/system``)
are accepted too. ``/api/system`` answers local.json's identity keys only, never the rest of the file (v1
files hold secrets such as ``apiKey`` and ``dnsPassword``).

History answers are built in a worker thread, one at a time, with at most READINGS_WAITING more in line: a
31-day answer re-reads day files the day cache no longer holds (it keeps 8) and takes seconds of CPU and
~100 MB, so without a bound a few clients could hold the CPU, the memory and the GIL the polls need.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from nutbridge.datalog.format import FIELDS, Column
from nutbridge.datalog.reader import DayCache
from nutbridge.errors import NutbridgeError
from nutbridge.node import KEYS, Node
from nutbridge.peers.devices import DeviceList, DeviceListError, TooManyChanges
from nutbridge.peers.entry import DeviceError, DeviceRefused, RefusalLog, validate
from nutbridge.server.legacy import key_matches
from nutbridge.server.live import LiveSnapshot
from nutbridge.server.openapi import MAX_DAYS, MAX_STEP, MIN_STEP, OPENAPI, OPENAPI_ELECTING
from nutbridge.snapshot import Comms
from nutbridge.snapshot_json import error_text, iso, reading_json

STALE_AFTER = 3  # polls: an answer older than this many intervals is stale
COMPRESS_OVER = 4096  # bytes: smaller answers go as they are
DEVICE_FIELDS = ("mac", "ip", "stamp", "name", "tz", "log")
READINGS_WORKERS = 1  # history answers built at once: one core at most, and one answer's memory
READINGS_WAITING = 8  # more waiting for their turn; beyond them a 503 (a few dashboards loading at once fit)
RETRY_AFTER = 5  # seconds, as the connection gate's 503 says

T = TypeVar("T")
dumps = functools.partial(json.dumps, separators=(",", ":"))


def reply(data: Any, status: int = 200) -> web.Response:
    """A JSON answer."""
    return web.json_response(data, status=status, dumps=dumps)


def error(status: int, reason: str) -> web.Response:
    """A JSON error with its reason."""
    return reply({"error": reason}, status)


def bearer(request: web.Request) -> str:
    """The credential of an ``Authorization: Bearer …`` header, or ""."""
    header = request.headers.get("Authorization", "")
    return header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""


class Busy(NutbridgeError):
    """The line of work is full: try again later."""


class Turns:
    """At most ``workers`` jobs run at once, each in a worker thread, and ``waiting`` more wait for their turn;
    a job beyond those is refused at once (Busy), so the work and the memory it takes stay bounded."""

    def __init__(self, workers: int, waiting: int) -> None:
        self.slots = asyncio.Semaphore(workers)
        self.max_waiting = waiting
        self.waiting = 0

    async def run(self, job: Callable[[], T]) -> T:
        """``job``'s result, once a worker is free; Busy when the line is full."""
        if self.slots.locked() and self.waiting >= self.max_waiting:
            raise Busy
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        done = asyncio.ensure_future(asyncio.to_thread(job))
        # the slot is free when the thread is done, not when a cancelled caller stops waiting for it
        done.add_done_callback(lambda _: self.slots.release())
        return await asyncio.shield(done)


async def json_body(request: web.Request) -> Any:
    """The request's body as JSON; ValueError says why it is not."""
    raw = await request.read()
    charset = request.charset or "utf-8"
    try:
        text = raw.decode(charset)
    except LookupError:
        raise ValueError(f"the body's charset {charset!r} is unknown") from None
    except UnicodeDecodeError:
        raise ValueError(f"the body is not {charset} text") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the body is not JSON: nested too deeply") from None
    except ValueError:
        raise ValueError("the body is not JSON") from None


def device_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The device fields of a JSON object, as ``validate`` takes them; DeviceError names a field of the wrong type.

    Text stays text (``validate`` refuses anything else); ``stamp`` may be a JSON number, ``log`` a list or the
    comma-separated string of a v1 form.
    """
    fields = {k: v for k, v in body.items() if k in DEVICE_FIELDS}
    stamp = fields.get("stamp")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        fields["stamp"] = str(stamp)
    if not isinstance(fields.get("log", ""), str | list):
        raise DeviceError("log: a list of timestamps, or one comma-separated string of them")
    return fields


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
        self.turns = Turns(READINGS_WORKERS, READINGS_WAITING)
        self.refusals = RefusalLog("device update")

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
        age = live.age() or 0.0
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
                "age": round(live.age() or 0.0, 3),
                "error": error_text(latest),
                "variables": dict(good.variables),
                "reading": None if reading is None else reading_json(reading),
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
                if "from" in q or "to" in q:
                    raise ValueError("days: instead of from/to, not with them")
                days = int(q["days"])
                if not 1 <= days <= MAX_DAYS:
                    raise ValueError(f"days: 1-{MAX_DAYS}")
                first, last = today - dt.timedelta(days=days - 1), today
            else:
                first = dt.date.fromisoformat(q.get("from", today.isoformat()))
                last = dt.date.fromisoformat(q.get("to", today.isoformat()))
            if last < first or (last - first).days >= MAX_DAYS:
                raise ValueError(f"from/to: at most {MAX_DAYS} days, from before to")
            if q.get("fields") == "":
                raise ValueError("fields: name one column or more (leave fields out for all)")
            names = q["fields"].split(",") if "fields" in q else list(FIELDS)
            unknown = [f for f in names if f not in FIELDS]
            if unknown:
                raise ValueError(f"fields: unknown {', '.join(unknown)}; known: {', '.join(FIELDS)}")
            fields = [Column(f) for f in names]
            step = float(q.get("step", "0"))
            if not (step == 0 or MIN_STEP <= step <= MAX_STEP):  # a smaller step overflows the slot number
                raise ValueError(f"step: seconds, 0 (every row) or {MIN_STEP}-{MAX_STEP}")
            shape = q.get("format", "rows")
            if shape not in ("rows", "columns"):
                raise ValueError("format: rows or columns")
        except (ValueError, KeyError) as exc:
            return error(400, f"bad query: {exc}")
        try:  # built and encoded off the loop: a month of columns is megabytes of JSON
            body = await self.turns.run(lambda: dumps(self.history(first, last, fields, step, shape)).encode())
        except Busy:
            busy = error(503, f"busy: {READINGS_WORKERS + READINGS_WAITING} history answers are being built or "
                         "waiting; try again later")  # fmt: skip
            busy.headers["Retry-After"] = str(RETRY_AFTER)
            return busy
        response = web.Response(body=body, content_type="application/json", charset="utf-8")
        if len(body) > COMPRESS_OVER:
            response.enable_compression()  # gzip or deflate when the client accepts it (in a thread when large)
        return response

    def history(self, first: dt.date, last: dt.date, fields: list[Column], step: float, shape: str) -> dict[str, Any]:
        """The answer of /api/readings: the fields and their rows or, for charts, columns of numbers (the times
        as Unix seconds, ms precision)."""
        width = len(fields) + 1
        rows: list[list[str]] = []
        numbers: list[list[float | None]] = [[] for _ in range(width)]
        bucket = None
        for n in range((last - first).days + 1):  # never a day past ``last`` (9999-12-31 has none)
            name = self.cache.name(first + dt.timedelta(days=n))
            day = self.cache.rows(name) or []
            index = self.cache.positions(day, [Column.DATETIME, *fields])
            if index is None:  # no rows, or a file whose header was torn: no columns
                continue
            times = self.cache.numbers(name, day, index[0]) if step or shape == "columns" else []
            kept: list[int] = list(range(len(day) - 1))
            if step:
                kept = []
                for i, slot in enumerate(None if t is None else int(t // step) for t in times):
                    if slot is not None and slot != bucket:
                        kept.append(i)
                        bucket = slot
            if shape == "columns":
                kept = [i for i in kept if times[i] is not None]
                for column, at in zip(numbers, index, strict=True):
                    parsed = self.cache.numbers(name, day, at)
                    column.extend(parsed[i] for i in kept)
            else:
                rows.extend([day[i + 1][at] for at in index] for i in kept)
        if shape == "columns":
            numbers[0] = [None if t is None else round(t, 3) for t in numbers[0]]
            return {"fields": [Column.DATETIME, *fields], "columns": numbers}
        return {"fields": [Column.DATETIME, *fields], "rows": rows}

    def authorized(self, request: web.Request) -> bool:
        given = bearer(request) or request.headers.get("X-Network-Key", "")
        return key_matches(given, self.network_key)  # bytes that are not UTF-8 are no key

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
            body = await json_body(request)
        except ValueError as exc:
            return error(400, str(exc))
        if not isinstance(body, Mapping):
            return error(400, f"the body must be a JSON object with {', '.join(DEVICE_FIELDS)}")
        sender = request.remote or "?"
        try:
            device = validate(device_fields(body))
            store = self.devices
            devices, _ = await asyncio.to_thread(lambda: store.upsert(device, sender=sender))
        except TooManyChanges as exc:
            self.refusals.refused(sender, str(exc))
            refusal = error(429, str(exc))
            refusal.headers["Retry-After"] = str(math.ceil(exc.wait))
            return refusal
        except DeviceRefused as exc:  # valid, but an address the policy refuses or a cap it would break
            self.refusals.refused(sender, str(exc))
            return error(422, str(exc))
        except DeviceListError as exc:  # the list cannot be read or written: not the sender's fault
            return error(503, str(exc))
        except DeviceError as exc:  # invalid
            self.refusals.refused(sender, str(exc))
            return error(400, str(exc))
        return reply([d.as_json() for d in devices])

    async def system(self, request: web.Request) -> web.Response:
        """This node's identity (local.json's identity keys, null when unset) and its wattage scaler: never the
        rest of local.json, whose v1 files hold secrets (apiKey, dnsPassword), as ``systemInfo=dump`` does."""
        return reply({**{k: self.node.info.get(k) for k in KEYS}, "wattage-scaler": self.node.wattage_scaler()})

    async def openapi(self, request: web.Request) -> web.Response:
        """The OpenAPI document of these routes (and of /api/election where this node takes part in one)."""
        electing = any(r.canonical == "/api/election" for r in request.app.router.resources())
        return reply(OPENAPI_ELECTING if electing else OPENAPI)
