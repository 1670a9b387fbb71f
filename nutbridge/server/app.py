"""The sidecar's aiohttp application and its listener, run inside the daemon's TaskGroup.

It answers from the data log (and, with the JSON API to come, the live snapshot), never from the hardware.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from nutbridge.config import Config
from nutbridge.daycache import DayCache, Held
from nutbridge.errors import ConfigError, NutbridgeError
from nutbridge.node import Node
from nutbridge.peers.addresses import AddressPolicy
from nutbridge.peers.budget import ChangeBudget
from nutbridge.peers.devices import DeviceList
from nutbridge.peers.election import Election
from nutbridge.server.api import JsonApi
from nutbridge.server.control import LoadControl
from nutbridge.server.dashboard import Dashboard
from nutbridge.server.gate import Gate
from nutbridge.server.legacy import ChargeController
from nutbridge.server.legacy_api import NetworkApi
from nutbridge.server.live import LiveSnapshot
from nutbridge.server.metrics import Stats
from nutbridge.server.opendata import OpenDataV1, OpenDataV2
from nutbridge.server.pubsub import PubSubHub

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
MAX_HOPS = 8  # X-Forwarded-For entries looked at, from its end
MAX_LINE, MAX_FIELD, MAX_HEADERS = 8190, 8190, 64  # a request line, a header line, headers per request
BACKLOG = 128  # connections the kernel queues before the gate sees them


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """What one listener takes at most; ``[api]``'s settings."""

    max_connections: int = 4096
    head_timeout: float = 10.0
    keepalive_timeout: float = 15.0

    @classmethod
    def from_config(cls, config: Config) -> ApiLimits:
        api = config.api
        return cls(api.max_connections, api.head_timeout, api.keepalive_timeout)


@web.middleware
async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a declared body over MAX_BODY at once (reads past it are refused by aiohttp itself)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    return await handler(request)


def forwarded_for(proxies: tuple[str, ...]) -> Middleware:
    """A middleware that takes a request from one of ``proxies`` (CIDR ranges) to come from the last address
    of its X-Forwarded-For that is not a proxy's (each proxy appends the address it was reached from)."""
    networks = [ipaddress.ip_network(p, strict=False) for p in proxies]

    def trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return ip is not None and any(ip in net for net in networks)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if trusted(address(request.remote)):
            hops = ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")[-MAX_HOPS:]
            for hop in reversed([address(h.strip()) for h in hops]):
                if not trusted(hop):
                    if hop is not None:  # junk: the request stays the proxy's own
                        request = request.clone(remote=str(hop))
                    break
        return await handler(request)

    return middleware


def address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text or "")
    except ValueError:
        return None


def make_app(
    data_dir: Path,
    *,
    cache: DayCache | None = None,
    devices: DeviceList | None = None,
    network_key: str | None = None,
    node: Node | None = None,
    live: LiveSnapshot | None = None,
    election: Election | None = None,
    pubsub: PubSubHub | None = None,
    control: LoadControl | None = None,
    dashboard: Dashboard | None = None,
    control_secret: str | None = None,
    peer_data: Path | None = None,
    trusted_proxies: tuple[str, ...] = (),
) -> web.Application:
    """The application: the Solar Protocol v1 routes and the JSON API over ``data_dir``, the device list, this
    node's identity, (when polling) the live snapshot, (when electing) the election's state and the dashboard;
    ``control_secret`` (the operator's ``[control] secret``) is what ``/stats/clear`` asks for (off without);
    ``peer_data`` is where v1's getRemoteData.py caches peers' days (``opendata.php?server=``);
    ``trusted_proxies``: see forwarded_for."""
    middlewares: list[Middleware] = [body_limit, forwarded_for(trusted_proxies)] if trusted_proxies else [body_limit]
    app = web.Application(client_max_size=MAX_BODY, middlewares=middlewares)
    cache = cache or DayCache(data_dir)
    node = node or Node({})
    legacy = ChargeController(cache, devices=devices, network_key=network_key, node=node, peer_data=peer_data)
    JsonApi(cache, live=live, devices=devices, network_key=network_key, node=node).routes(app)
    app.router.add_route("*", "/api/v1/chargecontroller.php", legacy.handle)
    app.router.add_route("*", "/api/v1/api.php", NetworkApi(cache, devices, network_key).handle)
    for route, kind in (("/api/v1/opendata.php", OpenDataV1), ("/api/v2/opendata.php", OpenDataV2)):
        handler = kind(cache, devices=devices, node=node, tz=legacy.tz, peer_data=peer_data)
        app.router.add_route("*", route, handler.handle)
    if election is not None:
        app.router.add_get("/api/election", election.handle)
    if pubsub is not None:
        pubsub.routes(app)
    if control is not None:
        control.routes(app)
    if dashboard is not None:
        dashboard.routes(app)
    Stats(live, cache, subscribers=pubsub, secret=control_secret).routes(app)
    return app


@dataclass(frozen=True, slots=True)
class Parts:
    """What the routes and the peer tasks share, built from a configuration."""

    data_dir: Path
    cache: DayCache
    devices: DeviceList | None
    node: Node

    @classmethod
    def from_config(cls, config: Config, held: Held | None = None) -> Parts:
        """The parts ``config`` asks for; the day cache reads, after the day files, the rows ``held`` (the data
        log's) has not written yet."""
        assert config.datalog.folder is not None  # with_overrides refuses an API without a data log
        folder, peers = config.datalog.folder, config.peers
        devices = None
        if peers.network_key is not None:
            policy = AddressPolicy.from_ranges(peers.allow_addresses, peers.peer_port)
            budget = ChangeBudget(peers.max_changes_per_hour)
            devices = DeviceList(peers.device_list_path(folder), policy=policy, budget=budget,
                                 expiry_days=peers.peer_expiry_days,
                                 flush_interval=peers.device_list_flush_interval)  # fmt: skip
        return cls(folder, DayCache(folder, held), devices, Node(config.node.info()))

    def app(
        self,
        config: Config,
        live: LiveSnapshot | None,
        election: Election | None,
        pubsub: PubSubHub | None = None,
        control: LoadControl | None = None,
    ) -> web.Application:
        """The application over these parts."""
        settings = dashboard_settings(config, self.node, live, pubsub)
        cache_seconds = config.api.browser_cache_seconds
        dashboard = Dashboard(settings, cache_seconds=cache_seconds) if config.api.dashboard else None
        return make_app(self.data_dir, cache=self.cache, devices=self.devices, network_key=config.peers.network_key,
                        node=self.node, live=live, election=election, pubsub=pubsub, control=control,
                        dashboard=dashboard, control_secret=config.control.secret,
                        peer_data=config.node.peer_data_folder(),
                        trusted_proxies=config.api.trusted_proxies)  # fmt: skip


def dashboard_settings(
    config: Config, node: Node, live: LiveSnapshot | None, pubsub: PubSubHub | None
) -> dict[str, object]:
    """What the dashboard's script needs to know: its title, how it gets live data, the poll interval."""
    ups = config.nut.port_file.stem if config.nut.port_file else None  # the UPS's name, as a rule
    return {
        "title": node.info.get("name") or ups or "nutbridge",
        "ups": ups,
        # "pubsub": the WebSocket; "poll": /api/status every interval; null: this node does not poll (--no-poll)
        "live": None if live is None else "pubsub" if pubsub is not None else "poll",
        "key": config.pubsub.api_key is not None,  # then the page's URL must carry ?key=
        "interval": config.monitor.poll_interval,
    }


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context from PEM files; a clear error when they do not load."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert} with key {key}: {exc}") from exc
    return context


class Sidecar:
    """Listens on ``host:port`` while entered (HTTPS with ``tls``); ``port`` is the bound one (0 picks one).

    At most ``max_connections`` at once (503 beyond), a request head within ``head_timeout`` seconds, idle
    keep-alive connections closed after ``keepalive_timeout``; aiohttp caps request lines and headers
    (MAX_LINE, MAX_FIELD, MAX_HEADERS: 400 or 431 beyond) and the body limit middleware the body.
    """

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None = None,
        limits: ApiLimits | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.tls = tls
        self.limits = limits or ApiLimits()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     keepalive_timeout=self.limits.keepalive_timeout, max_line_size=MAX_LINE,
                                     max_field_size=MAX_FIELD, max_headers=MAX_HEADERS)  # fmt: skip
        self._server: asyncio.Server | None = None
        self.gate: Gate | None = None

    def __str__(self) -> str:
        return f"API on {'https' if self.tls else 'http'}://{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        await self._runner.setup()
        assert self._runner.server is not None  # setup() made it
        self.gate = Gate(self._runner.server, max_connections=self.limits.max_connections,
                         head_timeout=self.limits.head_timeout, name=str(self))  # fmt: skip
        try:
            self._server = await asyncio.get_running_loop().create_server(
                self.gate, self.host, self.port, ssl=self.tls, reuse_address=True, backlog=BACKLOG
            )
        except OSError as exc:
            await self._runner.cleanup()
            raise NutbridgeError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        self.gate.name = str(self)
        log.info("%s", self)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()  # no new connections; the open ones are closed by the runner
        await self._runner.cleanup()
