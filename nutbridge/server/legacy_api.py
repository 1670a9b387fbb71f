"""``/api/v1/api.php`` as Solar Protocol's network runs it: peers POST their identity with the network key and
learn the device list from the answer; ``GET ?value=`` reads today's newest row.

Answers keep the original's bodies (200, ``Wrong API Key provided.``, the list as JSON with unescaped slashes,
an empty body on the first write). Unlike the original, the key is compared in constant time and never
logged, every field is validated (an invalid post is stored nowhere and answered with an empty body), and the
list is written under a lock by atomic replace.
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from nutbridge.datalog.reader import DayCache
from nutbridge.peers.devices import DeviceList
from nutbridge.peers.entry import DeviceError, RefusalLog, validate
from nutbridge.server.legacy import answer, key_matches

log = logging.getLogger(__name__)

WRONG_KEY = "Wrong API Key provided."
FIELDS = ("stamp", "ip", "mac", "name", "tz", "log")


def trimmed(value: object) -> str:
    """A form value as v1's test_input starts: trimmed (a file upload counts as empty)."""
    return value.strip() if isinstance(value, str) else ""


class NetworkApi:
    """The handler; ``devices`` is None when this node keeps no device list (no [peers] key)."""

    def __init__(self, cache: DayCache, devices: DeviceList | None, network_key: str | None) -> None:
        self.cache = cache
        self.devices = devices
        self.network_key = network_key
        self.refusals = RefusalLog("peer update")

    async def handle(self, request: web.Request) -> web.Response:
        """POST: a peer's update; GET ?value=: a value of today's newest row; anything else: empty."""
        if request.method == "POST":
            return answer(await self.post(request))
        if request.method == "GET" and "value" in request.query:
            return answer(self.value(request.query.getall("value")[-1]))
        return answer("")

    async def post(self, request: web.Request) -> str:
        try:
            form = await request.post()
        except (ValueError, LookupError):  # LookupError: a charset Python does not know
            form = None  # a malformed or non-form body: no key in it
        if form is None or not key_matches(trimmed(form.get("api_key", "")), self.network_key):
            return WRONG_KEY
        if self.devices is None:
            return ""
        sender = request.remote or "?"
        try:
            device = validate({name: trimmed(form.get(name, "")) for name in FIELDS})
            store = self.devices
            devices, existed = await asyncio.to_thread(lambda: store.upsert(device, sender=sender))
        except DeviceError as exc:  # invalid, refused, or the list cannot be written: v1's empty answer
            self.refusals.refused(sender, str(exc))
            return ""
        body = [d.as_json() for d in devices]
        return json.dumps(body, separators=(",", ":"), ensure_ascii=True) if existed else ""

    def value(self, value: str) -> str:
        """As chargecontroller.php's value path, without its allow-list."""
        return self.cache.newest_cell(value.replace("-", " ")) or ""
