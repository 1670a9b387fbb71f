"""PiCloud's wire format, byte for byte: Go's JSON and times, the frame a subscriber receives, how a frame or
body is read (and refused), the WebSocket close codes, and the HTTP refusals and Host check of its routes."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from nutbridge.config_keys import is_loopback
from nutbridge.errors import NutbridgeError

HOST = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^:\[\]]+))(?::\d{1,5})?")  # a Host header


CLOSE_GOING_AWAY, CLOSE_UNSUPPORTED, CLOSE_POLICY, CLOSE_TRY_AGAIN = 1001, 1003, 1008, 1013


# Go's encoding/json (as PiCloud was built, 2016) escapes these in strings; other characters are sent as UTF-8,
# and text that is not UTF-8 (here: a lone surrogate) becomes U+FFFD
_GO_ESCAPES: dict[int, str] = {c: f"\\u{c:04x}" for c in (*range(0x20), 0x3C, 0x3E, 0x26, 0x2028, 0x2029)}
_GO_ESCAPES |= {ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}
_GO_ESCAPES |= dict.fromkeys(range(0xD800, 0xE000), "\ufffd")


def go_string(text: str) -> str:
    """``text`` as Go's json.Marshal writes a string."""
    return f'"{text.translate(_GO_ESCAPES)}"'


def go_json(value: Any) -> str:
    """``value`` (dicts in order, lists, strings, None, bools, ints) as Go's json.Marshal writes it."""
    if isinstance(value, str):
        return go_string(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{go_string(k)}:{go_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    return json.dumps(value)  # None, bools and ints read the same in both


def go_time(ns: int | None = None) -> str:
    """A Unix time in nanoseconds (default now) as Go marshals a UTC time.Time: RFC 3339, trailing zeros cut."""
    ns = time.time_ns() if ns is None else ns
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return stamp + (f".{fraction:09d}".rstrip("0") if fraction else "") + "Z"


def frame(event: str, data: str, created_at: str) -> str:
    """What a subscriber receives, exactly as PiCloud sends it."""
    return f'{{"action":"publish","event":{go_string(event)},"data":{go_string(data)},"created_at":"{created_at}"}}\n'


class Refused(NutbridgeError):
    """A frame or body the hub cannot take; ``str`` says why (the close reason or the 400's text)."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse(text: str) -> dict[str, Any]:
    """A frame or body as a JSON object (strictly: no NaN, no trailing text)."""
    try:
        body = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise Refused("not JSON") from None
    if not isinstance(body, dict):
        raise Refused("not a JSON object")
    return body


def field(body: dict[str, Any], name: str) -> str:
    """A string field as Go decodes it: missing or null is empty, anything but a string is refused."""
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Refused(f"{name} must be a string")
    return value


class NoEvent(Refused):
    """A publication without an event."""


def publication(body: dict[str, Any]) -> tuple[str, str]:
    """(event, data) of a publish frame or body; an empty event is refused on every path (PiCloud: HTTP only)."""
    event, data = field(body, "event"), field(body, "data")
    if not event:
        raise NoEvent("no event")
    return event, data


def loopback_host(host: str) -> bool:
    """True when a Host header names this machine's loopback: ``localhost``, 127.0.0.0/8 or ``[::1]``, with or
    without a port. A name that DNS merely resolves to 127.0.0.1 is not one."""
    match = HOST.fullmatch(host)
    return match is not None and is_loopback(match["v6"] or match["name"].lower())


def client_name(request: web.Request) -> str:
    """``X-API-Client-Name``, else ``clientName`` ('' when neither)."""
    return request.headers.get("X-API-Client-Name") or request.query.get("clientName", "")


def text_error(status: int, text: str) -> web.Response:
    """A refusal as Go's http.Error writes it."""
    return web.Response(status=status, text=f"{text}\n", headers={"X-Content-Type-Options": "nosniff"})


def allowed(methods: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An OPTIONS handler as gorilla's MethodHandler answers: 200 with ``Allow``."""

    async def options(request: web.Request) -> web.Response:
        return web.Response(headers={"Allow": f"{methods}, OPTIONS"})

    return options
