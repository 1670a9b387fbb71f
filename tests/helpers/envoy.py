"""A fake Enphase gateway (its answers and the requests it saw), its serial and tokens it accepts."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import jwt
from aiohttp import web

from nutbridge.devices.enphase.testmode import shipped

SERIAL = "202400000001"


KEY = "a key for the test's tokens, 32 bytes or more"


def token(lifetime: float = 86400 * 30) -> str:
    return jwt.encode({"exp": int(time.time() + lifetime), "aud": SERIAL}, KEY, algorithm="HS256")


@dataclass
class Gateway:
    """What the fake gateway answers; ``requests`` counts each path asked."""

    relay: str = "closed"
    soc: str = "100"
    live: str = shipped("live")
    reports: str = shipped("reports")
    secctrl: str = shipped("secctrl")
    inventory: str | None = None  # ivp/ensemble/inventory; None: not found (404)
    refusing: dict[str, int] = field(default_factory=dict)  # paths answered with this 4xx
    refuse_tokens: int = 0  # answer 401 to this many requests
    broken: set[str] = field(default_factory=set)  # paths answered with garbage
    failing: set[str] = field(default_factory=set)  # paths answered with a 500
    hanging: set[str] = field(default_factory=set)  # paths that never answer
    requests: dict[str, int] = field(default_factory=dict)
    tokens_issued: int = 0

    def app(self) -> web.Application:
        async def gateway(request: web.Request) -> web.Response:
            path = request.path.lstrip("/")
            self.requests[path] = self.requests.get(path, 0) + 1
            if not request.headers.get("Authorization", "").startswith("Bearer ") or self.refuse_tokens > 0:
                self.refuse_tokens -= 1
                return web.Response(status=401)
            if path in self.broken:
                return web.Response(text="<html>not json")
            if path in self.failing:
                return web.Response(status=500)
            if path in self.refusing:
                return web.Response(status=self.refusing[path])
            if path in self.hanging:
                await asyncio.sleep(2.5)  # past the source's 2 s timeout
            texts = {"ivp/ensemble/relay": shipped("relay").replace("@RELAY_STATE@", self.relay),
                     "ivp/livedata/status": self.live.replace("@BATT_SOC@", self.soc),
                     "ivp/meters/reports": self.reports, "ivp/ensemble/secctrl": self.secctrl,
                     "info.xml": shipped("info")}  # fmt: skip
            if self.inventory is not None:
                texts["ivp/ensemble/inventory"] = self.inventory
            return web.Response(text=texts[path]) if path in texts else web.Response(status=404)

        async def login(request: web.Request) -> web.Response:
            form = await request.post()
            ok = form.get("user[email]") == "me@example.org" and form.get("user[password]") == "secret pw"
            return web.json_response({"session_id": "abc"} if ok else {"message": "nope"}, status=200 if ok else 401)

        async def tokens(request: web.Request) -> web.Response:
            self.tokens_issued += 1
            return web.Response(text=token())

        app = web.Application()
        app.router.add_post("/login/login.json", login)
        app.router.add_post("/tokens", tokens)
        app.router.add_get("/{path:.*}", gateway)
        return app
