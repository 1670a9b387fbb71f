"""PiCloud-compatible WebSocket pub/sub on the sidecar: ``/subscribe``, ``/publish`` (WebSocket and POST), ``/info``.

Wire format as exitcodezero/picloud (dd83196) sends it, byte for byte: its JSON (struct field order, ``<>&``
escaped, a newline after each frame, since gorilla's WriteJSON uses json.Encoder), RFC 3339 times in UTC with
nanoseconds and trailing zeros cut (Go's time.Time), the texts and codes of its refusals (401 ``Invalid API
Key`` / ``Invalid client name``, 400 ``Bad request``, 405 with ``Allow``, 200 with ``Allow`` for OPTIONS).

Where PiCloud stalls, leaks or breaks, this does not (README, "Pub/sub"): every subscriber has a bounded queue
and its own sender task, and one that falls ``queue`` messages or ``queue_bytes`` bytes behind (its queue and
its socket's write buffer) is closed with 1013 instead of stalling the hub, its queued frames dropped at once;
a publish never waits, and its frame is encoded once for all; pings every HEARTBEAT seconds drop dead peers;
frames over ``max_frame`` are closed with 1009, frames it cannot take with 1003, a connection over MAX_EVENTS
subscriptions with 1008, and the server's stop with 1001; bad JSON is a 400, not a 500; ``created_at`` is when
the frame arrived and a publisher cannot forge it or ``action``; the key is compared in constant time and, once
set, always needed; ``/info`` is always served, pushes at once, lists no event without subscribers and no
``null`` for no connections; at most ``max_subscribers`` sockets (503 before the upgrade). Without a key
(loopback only), the Host must name the loopback, so that a page whose DNS name is rebound to 127.0.0.1 is
refused.

The daemon publishes every poll as event ``reading`` and each change of ``ups.status`` or the comms state as
``status`` (``update``, the Sink side); their ``data`` is JSON text, since PiCloud's ``data`` is a string.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any, ClassVar
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from nutbridge.config_sections import PubSubConfig
from nutbridge.errors import NutbridgeError
from nutbridge.server.legacy import key_matches
from nutbridge.server.pubsub_connection import Connection, Kind
from nutbridge.server.pubsub_events import dumps, status_data
from nutbridge.server.pubsub_wire import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    CLOSE_UNSUPPORTED,
    NoEvent,
    Refused,
    allowed,
    client_name,
    field,
    frame,
    go_json,
    go_time,
    loopback_host,
    parse,
    publication,
    text_error,
)
from nutbridge.sinks import Wants
from nutbridge.snapshot import Comms, Snapshot
from nutbridge.snapshot_json import snapshot_json
from nutbridge.tasks import Background

log = logging.getLogger(__name__)

HEARTBEAT = 30.0  # seconds between pings; a peer that has not answered half of this later is dropped
CLOSE_TIMEOUT = 5.0  # seconds a closing handshake may take before the connection is cut
MAX_EVENTS = 256  # subscriptions one connection may hold (PiCloud has no limit: a memory DoS)
RETRY_AFTER = 30  # seconds, with the 503 of a full hub


class PubSubHub:
    """The hub: routes for the sidecar's app (``routes``) and a Sink for the monitor (``update``).

    Args:
        config: ``[pubsub]``: the key (None: open, which the configuration allows on loopback only), the queue
            (messages and bytes), the frame limit, the ``/info`` interval and the socket cap.
        heartbeat: seconds between pings.
        close_timeout: seconds a closing handshake may take.
    """

    wants: ClassVar[Wants] = Wants.EVERY  # subscribers get every poll; the hub never waits for one

    def __init__(
        self, config: PubSubConfig, *, heartbeat: float = HEARTBEAT, close_timeout: float = CLOSE_TIMEOUT
    ) -> None:
        self.config, self.heartbeat, self.close_timeout = config, heartbeat, close_timeout
        self._events: dict[str, dict[Connection, None]] = {}  # event → its subscribers, in subscription order
        self._listed: dict[Connection, None] = {}  # subscriber and publisher sockets, as /info lists them
        self._sockets: set[Connection] = set()  # every open socket, /info's included
        self._opening = 0  # sockets counted against the cap while their upgrade runs
        self._status: tuple[Comms, str | None] | None = None  # the last one published
        self.published = 0  # messages published, from any side
        self.slow_closed = 0  # subscribers closed with 1013

    def __str__(self) -> str:
        return "pub/sub hub"

    @property
    def subscribers(self) -> int:
        """Open subscriber sockets."""
        return sum(1 for c in self._sockets if c.kind is Kind.SUBSCRIBER)

    @property
    def queued(self) -> int:
        """Bytes queued for subscribers and not yet handed to their sockets."""
        return sum(c.queued for c in self._sockets)

    @property
    def sockets(self) -> int:
        """Open sockets of every kind (what ``max_subscribers`` caps)."""
        return len(self._sockets)

    def routes(self, app: web.Application) -> None:
        """Add the routes to ``app`` (before it starts), and the closing of every socket to its shutdown."""
        router = app.router
        router.add_get("/subscribe", self.subscribe_socket, allow_head=False)
        router.add_get("/connect", self.subscribe_socket, allow_head=False)  # PiCloud's one socket until Nov 2015
        router.add_get("/publish", self.publish_socket, allow_head=False)
        router.add_post("/publish", self.publish_http)
        router.add_get("/info", self.info_socket, allow_head=False)
        for path, allow in (("/subscribe", "GET"), ("/connect", "GET"), ("/publish", "GET, POST"), ("/info", "GET")):
            router.add_route("OPTIONS", path, allowed(allow))
        app.on_shutdown.append(self.on_shutdown)

    # Publishing

    def publish(self, event: str, data: str) -> int:
        """Queue ``data`` as ``event`` for its subscribers, never waiting; the number it was queued for."""
        self.published += 1
        subscribers = self._events.get(event)
        if not subscribers:
            return 0
        text = frame(event, data, go_time()).encode()  # once: every queue holds the same bytes
        sent = 0
        for connection in list(subscribers):
            backlog = connection.backlog
            if backlog and backlog + len(text) > self.config.queue_bytes:  # one frame always fits an empty one
                self._too_slow(connection, f"{self.config.queue_bytes} bytes")
            elif connection.queue.full():
                self._too_slow(connection, f"{self.config.queue} messages")
            else:
                connection.put(text)
                sent += 1
        return sent

    def _too_slow(self, connection: Connection, behind: str) -> None:
        self.slow_closed += 1
        log.warning("pub/sub: %s (%s) fell %s behind; closed", connection.client_name, connection.ip_address, behind)
        self._forget(connection)
        connection.shut(CLOSE_TRY_AGAIN, f"too slow: {behind} behind")

    async def update(self, snapshot: Snapshot) -> None:
        """Publish the poll as ``reading`` and, when ``ups.status`` or the comms state changed, ``status``."""
        if self._events.get("reading"):
            self.publish("reading", dumps(snapshot_json(snapshot)))
        else:  # nobody listens: not worth building
            self.published += 1
        previous = self._status
        last = None if previous is None else previous[1]
        ups_status = snapshot.variables.get("ups.status") if snapshot.ok else last  # a failed poll: the last stands
        if previous != (snapshot.comms, ups_status):
            self._status = (snapshot.comms, ups_status)
            self.publish("status", dumps(status_data(snapshot, ups_status, previous)))

    # Sockets

    async def subscribe_socket(self, request: web.Request) -> web.StreamResponse:
        """``/subscribe``: subscribe, unsubscribe and ``unsubscribe:all`` (and, as the old ``/connect``, publish)."""
        return await self._socket(request, Kind.SUBSCRIBER)

    async def publish_socket(self, request: web.Request) -> web.StreamResponse:
        """``/publish`` as a WebSocket: every frame ``{"event","data"}`` is published."""
        return await self._socket(request, Kind.PUBLISHER)

    async def info_socket(self, request: web.Request) -> web.StreamResponse:
        """``/info``: the hub's state at once, then every ``info_interval`` seconds (no client name needed)."""
        return await self._socket(request, Kind.INFO)

    async def publish_http(self, request: web.Request) -> web.StreamResponse:
        """``POST /publish``: 201 with an empty body, 400 for a bad body or no event, 401 as PiCloud."""
        refusal = self._refusal(request, Kind.PUBLISHER)
        if refusal is not None:
            return refusal
        raw = await request.read()
        if len(raw) > self.config.max_frame:
            return text_error(413, f"Request Entity Too Large: at most {self.config.max_frame} bytes")
        try:
            event, data = publication(parse(raw.decode("utf-8", "replace")))  # Go replaces what is not UTF-8
        except Refused as exc:
            return text_error(400, "Bad request" if isinstance(exc, NoEvent) else f"Bad request: {exc}")
        self.publish(event, data)
        return web.Response(status=201)

    def _refusal(self, request: web.Request, kind: Kind) -> web.Response | None:
        """PiCloud's checks in its order (key, then client name); when open, a Host that is not the loopback's
        and a cross-site page are refused."""
        key = self.config.api_key
        if key is None:  # open (loopback only): a browser page of another site must not drive it
            host = request.headers.get("Host", "")
            if not loopback_host(host):  # DNS rebinding: evil.example resolved to 127.0.0.1 sends its own name
                return text_error(403, "Forbidden: a hub without a key answers only to localhost or a loopback address")
            origin = request.headers.get("Origin")
            if origin and urlsplit(origin).netloc.lower() != host.lower():
                return text_error(403, "Forbidden: cross-site request to a hub without a key")
        elif not key_matches(request.headers.get("X-API-Key") or request.query.get("apiKey", ""), key):
            return text_error(401, "Invalid API Key")
        if kind is not Kind.INFO and not client_name(request):
            return text_error(401, "Invalid client name")
        return None

    async def _socket(self, request: web.Request, kind: Kind) -> web.StreamResponse:
        refusal = self._refusal(request, kind)
        if refusal is not None:
            return refusal
        if len(self._sockets) + self._opening >= self.config.max_subscribers:
            refusal = text_error(503, "Service Unavailable: too many connections")
            refusal.headers["Retry-After"] = str(RETRY_AFTER)
            return refusal
        ws = web.WebSocketResponse(
            heartbeat=self.heartbeat, max_msg_size=self.config.max_frame, compress=False, timeout=self.close_timeout
        )
        self._opening += 1
        try:
            await ws.prepare(request)  # not an upgrade: 400, as gorilla answers
        finally:
            self._opening -= 1
        transport = request.transport
        connection = Connection(ws, request, kind, client_name(request), self.config.queue)
        self._sockets.add(connection)
        if kind is not Kind.INFO:
            self._listed[connection] = None
        log.info("pub/sub: %s socket from %s (%s)", kind.value, connection.ip_address, connection.client_name or "-")
        async with Background() as tasks:  # the sender: its failure is the handler's, never lost
            if kind is not Kind.PUBLISHER:  # a publisher's socket only reads
                task = connection.send() if kind is Kind.SUBSCRIBER else self._push_info(connection)
                connection.sender = tasks.start(task, name=f"nutbridge.pubsub.{kind.value}")
            try:
                with contextlib.suppress(TimeoutError):  # shut() from outside: the interrupt
                    async with asyncio.timeout(None) as connection.interrupt:
                        await self._read(connection)
                connection.interrupt = None
                self._forget(connection)
                if connection.sender is not None:
                    connection.sender.cancel()
                    await asyncio.gather(connection.sender, return_exceptions=True)
                if connection.closing is not None and not ws.closed:
                    code, reason = connection.closing
                    with contextlib.suppress(TimeoutError):  # waits for the peer's close frame (ws timeout)
                        async with asyncio.timeout(self.close_timeout):
                            await ws.close(code=code, message=reason.encode())
            finally:
                self._forget(connection)
                self._sockets.discard(connection)
                connection.drop()
                if connection.sender is not None:
                    connection.sender.cancel()
                    connection.sender = None  # its CancelledError's traceback holds send()'s frame, which holds us
                connection.finished.set()
                log.info("pub/sub: %s socket from %s closed (%s)", kind.value, connection.ip_address, ws.close_code)
                if transport is not None:  # a closed transport still flushes; one whose peer never reads is cut
                    asyncio.get_running_loop().call_later(self.close_timeout, transport.abort)
        return ws

    async def _read(self, connection: Connection) -> None:
        """Act on each frame until the socket closes; a frame that cannot be taken closes it with a code."""
        async for message in connection.ws:
            if message.type is WSMsgType.BINARY:
                connection.shut(CLOSE_UNSUPPORTED, "text frames only")
            elif message.type is WSMsgType.TEXT and connection.kind is not Kind.INFO:  # /info's are ignored
                try:
                    self._command(connection, parse(message.data))
                except Refused as exc:
                    connection.shut(CLOSE_UNSUPPORTED, str(exc))
                except TooMany as exc:
                    connection.shut(CLOSE_POLICY, str(exc))
            elif message.type is WSMsgType.ERROR:  # aiohttp has closed it: 1009 for a frame over max_msg_size
                return
            if connection.closing is not None:
                return

    def _command(self, connection: Connection, body: dict[str, Any]) -> None:
        """One frame: a publication on ``/publish``; a subscriber's action (others are ignored, as PiCloud)."""
        if connection.kind is Kind.PUBLISHER:
            self.publish(*publication(body))  # action and created_at of the frame are not the publisher's to set
            return
        action, event = field(body, "action"), field(body, "event")
        if action == "subscribe" and event:
            if event not in connection.events and len(connection.events) >= MAX_EVENTS:
                raise TooMany(f"at most {MAX_EVENTS} subscriptions")
            connection.events[event] = None
            self._events.setdefault(event, {})[connection] = None
        elif action == "unsubscribe":
            self._unsubscribe(connection, (event,))
        elif action == "unsubscribe:all":
            self._unsubscribe(connection, list(connection.events))
        elif action == "publish":  # the old /connect socket, which PiCloud's Python client still uses
            self.publish(*publication(body))

    def _unsubscribe(self, connection: Connection, events: Iterable[str]) -> None:
        for event in events:
            connection.events.pop(event, None)
            subscribers = self._events.get(event)
            if subscribers is not None:
                subscribers.pop(connection, None)
                if not subscribers:  # PiCloud keeps it forever, with "connections": null
                    del self._events[event]

    def _forget(self, connection: Connection) -> None:
        """No more frames for ``connection`` and no more listing in ``/info``."""
        self._unsubscribe(connection, list(connection.events))
        self._listed.pop(connection, None)

    # /info

    def info(self) -> dict[str, Any]:
        """PiCloud's infoMessage: events (by name) with their subscribers, every listed connection, the time."""
        return {
            "subscriptions": [
                {"name": event, "connections": [c.info() for c in subscribers]}
                for event, subscribers in sorted(self._events.items())
            ],
            "all_connections": [c.info() for c in self._listed],
            "created_at": go_time(),
        }

    async def _push_info(self, connection: Connection) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        with contextlib.suppress(ConnectionError):
            while True:
                await connection.ws.send_str(go_json(self.info()) + "\n")
                due = max(due + self.config.info_interval, loop.time())
                await asyncio.sleep(due - loop.time())

    async def on_shutdown(self, app: web.Application | None = None) -> None:
        """Close every socket with 1001 and wait for the handshakes (bounded by ``close_timeout``)."""
        sockets = list(self._sockets)
        for connection in sockets:
            connection.shut(CLOSE_GOING_AWAY, "server shutting down")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2 * self.close_timeout):
                await asyncio.gather(*(c.finished.wait() for c in sockets))


class TooMany(NutbridgeError):
    """A subscriber over MAX_EVENTS."""
