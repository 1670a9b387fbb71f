"""The dashboard at ``/`` and the power flow alone at ``/flow``, served from files inside the package.

Nothing is fetched at run time and nothing is built at install: the page, its script and style, and uPlot
(vendored, pinned, with its licence, in ``web/``) are read once at start, gzipped once, and served from memory.
Asset URLs carry a hash of their content, so browsers may keep them ``browser_cache_seconds`` without ever
running an old script after an upgrade; the pages themselves are always revalidated (ETag, 304).
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web

from nutbridge.datalog.format import Column

# Served under /static/NAME; the page refers to them as {{NAME}}.
ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE": "text/plain; charset=utf-8",
}
# pyPowerwall's iframe styles: transparent, black or white background, or a Grafana panel's
STYLES = ("clear", "black", "white", "grafana")
# The data log's columns the plots draw, by the script's names for them: the script asks /api/readings for these
# and knows no column name of its own
PLOTTED = {
    "pv": Column.PV_POWER_L,
    "load": Column.LOAD_POWER,
    "charge": Column.BATTERY_PERCENTAGE,
    "voltage": Column.BATTERY_VOLTAGE,
}
# Scripts and styles from this server only; sockets back to it; embeddable anywhere (an iframe is the point)
CSP = "default-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'"


@dataclass(frozen=True, slots=True)
class Asset:
    """One file as served: its bytes, the same gzipped, its ETag and type."""

    body: bytes
    gzipped: bytes
    etag: str
    content_type: str

    @classmethod
    def of(cls, body: bytes, content_type: str) -> Asset:
        digest = hashlib.sha256(body).hexdigest()[:16]
        return cls(body, gzip.compress(body, 9, mtime=0), f'"{digest}"', content_type)

    def response(self, request: web.Request, cache_control: str) -> web.Response:
        """200 with the body (gzipped when the browser takes it), or 304 when its copy is current."""
        headers = {"ETag": self.etag, "Cache-Control": cache_control, "X-Content-Type-Options": "nosniff"}
        headers["Vary"] = "Accept-Encoding"
        if self.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        body = self.body
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            body, headers["Content-Encoding"] = self.gzipped, "gzip"
        return web.Response(body=body, headers=headers, content_type=self.content_type.split(";")[0], charset="utf-8")


def read_web(name: str) -> bytes:
    return resources.files("nutbridge.server").joinpath("web", name).read_bytes()


class Dashboard:
    """The two pages and their assets. ``settings`` is what the page's script needs to know of this node; the
    columns it plots (PLOTTED) are added to them."""

    def __init__(self, settings: dict[str, Any], *, cache_seconds: int) -> None:
        self.assets = {name: Asset.of(read_web(name), kind) for name, kind in ASSETS.items()}
        self.asset_cache = f"public, max-age={cache_seconds}, immutable" if cache_seconds else "no-cache"
        urls = {name: f"/static/{name}?v={asset.etag.strip(chr(34))}" for name, asset in self.assets.items()}
        # JSON in a data block (never run); "</" cannot end it early
        config = json.dumps({**settings, "columns": PLOTTED}, separators=(",", ":")).replace("</", "<\\/")
        self.pages: dict[tuple[str, str], Asset] = {}
        for page in ("index.html", "flow.html"):
            text = read_web(page).decode()
            for name, url in urls.items():
                text = text.replace("{{" + name + "}}", url)
            text = text.replace("{{config}}", config).replace("{{title}}", html.escape(str(settings["title"])))
            for style in ("", *STYLES):
                body = text.replace("{{style}}", f"style-{style}" if style else "")
                self.pages[page, style] = Asset.of(body.encode(), "text/html; charset=utf-8")

    def routes(self, app: web.Application) -> None:
        """Add ``/``, ``/flow`` and ``/static/{name}`` to ``app``."""
        app.router.add_get("/", self.index)
        app.router.add_get("/flow", self.flow)
        app.router.add_get("/static/{name}", self.static)

    def page(self, request: web.Request, name: str) -> web.Response:
        style = request.query.get("style", "")
        if style and style not in STYLES:
            raise web.HTTPBadRequest(text=f"style: one of {', '.join(STYLES)} (or none)\n")
        response = self.pages[name, style].response(request, "no-cache")
        response.headers["Content-Security-Policy"] = CSP
        return response

    async def index(self, request: web.Request) -> web.Response:
        """The dashboard: power flow, battery and NUT's view, plots of today and of 7 days, live."""
        return self.page(request, "index.html")

    async def flow(self, request: web.Request) -> web.Response:
        """The power flow alone, for an iframe; ``?style=clear|black|white|grafana``."""
        return self.page(request, "flow.html")

    async def static(self, request: web.Request) -> web.Response:
        """A file of the page; unknown names are 404 (nothing outside the package's list is served)."""
        asset = self.assets.get(request.match_info["name"])
        if asset is None:
            raise web.HTTPNotFound(text="no such file\n")
        return asset.response(request, self.asset_cache)
