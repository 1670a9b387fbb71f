"""``/metrics`` (Prometheus' text format), ``/stats`` and ``/stats/clear`` (pyPowerwall's), and the request
counter behind them. Everything is read from the live snapshot and counters kept in memory: never the device.

``/stats/clear`` is a POST behind the operator's ``[control] secret`` (``Authorization: Bearer …`` or a form's
``token``), refused without one (403, naming the key to set), and refused from a page of another origin: it
changes state, and pyPowerwall's GET let any page a browser opened, or any link, reset the counters.

The metric names carry their unit (``nutbridge_pv_power_watts``); every numeric NUT variable is one series of
``nutbridge_nut_variable{variable="battery.charge"}``. Request counts are labelled by route pattern, never by
the path a client sent, so a scanner cannot grow the label set.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from nutbridge.datalog.reader import DayCache
from nutbridge.model import Measure
from nutbridge.server.api import error
from nutbridge.server.control import form, token
from nutbridge.server.legacy import key_matches
from nutbridge.server.live import LiveSnapshot
from nutbridge.snapshot import Comms
from nutbridge.snapshot_json import measurements

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The model's units (Measure.unit) as Prometheus spells them at the end of a metric's name
UNITS = {"W": "watts", "V": "volts", "A": "amperes", "°C": "celsius", "%": "percent", "kWh": "kwh"}


def metric_name(field: str, measure: Measure) -> str:
    """``pv_power`` (W) → ``nutbridge_pv_power_watts``; a unit Prometheus has no word for here adds none."""
    unit = UNITS.get(measure.unit)
    return f"nutbridge_{field}" + (f"_{unit}" if unit else "")


def finite_value(value: object) -> float | None:
    """A finite number from a NUT variable's text, else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def same_origin(request: web.Request) -> bool:
    """True without an Origin header (not a browser's cross-site request), or when it names the request's own
    Host: the same host and port, the port by default the Origin's scheme's. ``Origin: null`` is another one."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        theirs = URL(origin)
        ours = URL(f"{theirs.scheme}://{request.host}") if theirs.scheme in ("http", "https") else None
    except ValueError:
        return False
    return ours is not None and theirs.host is not None and (theirs.host, theirs.port) == (ours.host, ours.port)


class Stats:
    """Counters of the sidecar, and the offsets ``/stats/clear`` sets."""

    def __init__(
        self, live: LiveSnapshot | None, cache: DayCache, *, subscribers: Any = None, secret: str | None = None
    ) -> None:
        self.live = live
        self.cache = cache
        self.secret = secret  # the operator's [control] secret, which /stats/clear asks for
        self.subscribers = subscribers  # the pub/sub hub, whose ``subscribers`` are its open subscriber sockets
        self.started = time.monotonic()  # uptimes are intervals: a stepped wall clock must not move them
        self.requests: Counter[tuple[str, int]] = Counter()
        self._cleared_at = self.started
        self._offsets: dict[str, int] = {}

    @web.middleware
    async def count_requests(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count each answer by route pattern and status (404s under one label)."""
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self.requests[(name, exc.status)] += 1
            raise
        self.requests[(name, response.status)] += 1
        return response

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self.count_requests)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/stats", self.stats)
        app.router.add_post("/stats/clear", self.clear)  # not GET, as pyPowerwall's: a link must not reset it

    def totals(self) -> dict[str, int]:
        latest = None if self.live is None else self.live.latest
        return {
            "polls": 0 if latest is None else latest.seq,
            "failures": 0 if latest is None else latest.failures_total,
            "requests": sum(self.requests.values()),
            "cache_hits": self.cache.hits,
            "cache_misses": self.cache.misses,
        }

    async def stats(self, request: web.Request) -> web.Response:
        """pyPowerwall-style counters since the start, or since the last /stats/clear."""
        now = time.monotonic()
        latest = None if self.live is None else self.live.latest
        good = None if self.live is None else self.live.last_good
        counts = {k: v - self._offsets.get(k, 0) for k, v in self.totals().items()}
        return web.json_response(
            {
                "uptime": round(now - self.started, 3),
                "since": round(now - self._cleared_at, 3),
                **counts,
                "comms": None if latest is None else latest.comms.value,
                "last_error": None if latest is None or latest.error is None else str(latest.error),
                "last_poll_age": None if self.live is None or good is None else round(self.live.age() or 0.0, 3),
                "subscribers": getattr(self.subscribers, "subscribers", None),
            }
        )

    async def clear(self, request: web.Request) -> web.Response:
        """Start the counters of /stats again (the daemon's own totals, and /metrics, are not reset)."""
        if not same_origin(request):
            return error(403, "a request from a page of another origin")
        if self.secret is None:
            return error(403, "/stats/clear is off: set [control] secret to turn it on")
        fields = await form(request)
        if not key_matches(token(request, fields or {}), self.secret):
            return error(401, "no or a wrong secret: send [control] secret as Authorization: Bearer … or token=")
        self._offsets = self.totals()
        self._cleared_at = time.monotonic()
        return web.json_response({"cleared": True})

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.exposition(), headers={"Content-Type": CONTENT_TYPE})

    def exposition(self) -> str:
        """The text format: HELP and TYPE for each family, then its samples."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{labels} {value!r}" for labels, value in samples)

        latest = None if self.live is None else self.live.latest
        good = None if self.live is None else self.live.last_good
        totals = self.totals()
        family(
            "nutbridge_up_seconds",
            "gauge",
            "Seconds since the daemon started.",
            [("", time.monotonic() - self.started)],
        )
        family("nutbridge_polls_total", "counter", "Polls of the device.", [("", float(totals["polls"]))])
        family(
            "nutbridge_poll_failures_total", "counter", "Polls that got no answer.", [("", float(totals["failures"]))]
        )
        state = None if latest is None else latest.comms
        family("nutbridge_comms", "gauge", "1 for the present comms state (ok, failing, lost).",
               [(f'{{state="{c.value}"}}', 1.0 if c is state else 0.0) for c in Comms])  # fmt: skip
        if good is not None:
            family("nutbridge_last_good_poll_timestamp_seconds", "gauge", "When the device last answered.",
                   [("", good.time)])  # fmt: skip
            # every measured field of the reading's own type: a family's own meters are gauges too
            for field, measure, value in [] if good.reading is None else measurements(good.reading):
                family(metric_name(field, measure), "gauge", f"The reading's {field.replace('_', ' ')}.", [("", value)])
            variables = [(k, finite_value(v)) for k, v in sorted(good.variables.items())]
            family("nutbridge_nut_variable", "gauge", "Each numeric NUT variable, as the port file holds it.",
                   [(f'{{variable="{label(k)}"}}', v) for k, v in variables if v is not None])  # fmt: skip
        family("nutbridge_day_cache_hits_total", "counter", "Day-file reads answered from memory.",
               [("", float(self.cache.hits))])  # fmt: skip
        counts = sorted(self.requests.items())
        family("nutbridge_http_requests_total", "counter", "Answers of the sidecar, by route and status.",
               [(f'{{route="{label(r)}",status="{s}"}}', float(n)) for (r, s), n in counts])  # fmt: skip
        return "\n".join(out) + "\n"
