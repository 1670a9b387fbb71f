"""Load control: ``POST /control/load`` (``value=on|off&token=…``) switches the Tracer's load output, ``GET
/control/load`` reads it. Off unless ``[control] secret`` is set. The token is the secret, sent as
``Authorization: Bearer …`` or as a POST form's ``token``, never in the URL (URLs land in access logs, proxies'
logs and browser history: a query string's token is refused with a 400). It is compared in constant time, the
body is capped like every other, and each change is one audit line in the log (never the token).

The request goes to the device through the daemon's LoadSwitch (devices/load_switch.py), the path NUT's
``upscmd load.off|load.on`` takes too: the same source the monitor polls, whose lock keeps it from landing in
the middle of a poll's Modbus exchange.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from nutbridge.devices.load_switch import LoadSwitch
from nutbridge.errors import SourceError
from nutbridge.server.api import bearer
from nutbridge.server.legacy import key_matches

IN_URL = (
    "a token in the URL is refused (URLs land in logs and browser history): send it as Authorization: Bearer … "
    "or as a POST form's token"
)


def error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


async def form(request: web.Request) -> dict[str, str] | None:
    """A POST's form fields (none for another method or body type); None when the form cannot be read."""
    try:
        fields = await request.post()
    except (ValueError, LookupError):
        return None
    return {k: v for k, v in fields.items() if isinstance(v, str)}


def token(request: web.Request, fields: Mapping[str, str]) -> str:
    """The secret a request sends: ``Authorization: Bearer …``, else its form's ``token``."""
    return bearer(request) or fields.get("token", "")


class LoadControl:
    """The two routes over the load switch of the source the daemon opened (a Tracer, the simulator); without
    one (any other source), the routes answer 501."""

    def __init__(self, secret: str, switch: LoadSwitch | None) -> None:
        self.secret = secret
        self.switch = switch

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/control/load", self.handle)
        app.router.add_post("/control/load", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        if "token" in request.query:
            return error(400, IN_URL)
        fields = await form(request)
        if fields is None:
            return error(400, "send value=on|off&token=… as a form")
        if not key_matches(token(request, fields), self.secret):
            return error(401, "no or a wrong token")
        value = fields.get("value") if request.method == "POST" else None
        if request.method == "POST" and value not in ("on", "off"):
            return error(400, "value must be on or off")
        if self.switch is None:
            return error(501, "this source has no load output to switch")
        try:
            if value is None:
                now = await self.switch.read()
            else:
                now = await self.switch.switch(value == "on", by=str(request.remote))
        except SourceError as exc:
            return error(503, str(exc))
        return web.json_response({"load": "on" if now else "off"})
