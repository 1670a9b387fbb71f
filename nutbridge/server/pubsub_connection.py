"""One pub/sub WebSocket: what it is for (Kind), who it is as /info lists it, what it subscribed to, and its
bounded queue and sender task."""

from __future__ import annotations

import asyncio
import contextlib
import enum

from aiohttp import WSMsgType, web

from nutbridge.server.pubsub_wire import go_time


class Kind(enum.Enum):
    """What a socket is for."""

    SUBSCRIBER = "subscriber"
    PUBLISHER = "publisher"
    INFO = "info"


class Connection:
    """One WebSocket: who it is (as ``/info`` lists it), what it subscribed to, and its queue and sender."""

    __slots__ = (
        *("client_name", "closing", "connected_at", "events", "finished", "handler", "interrupt", "ip_address"),
        *("kind", "queue", "queued", "sender", "transport", "ws"),
    )

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, kind: Kind, name: str, queue: int) -> None:
        self.ws, self.kind, self.client_name = ws, kind, name
        peer = request.transport.get_extra_info("peername") if request.transport else None
        host, port = (peer[0], peer[1]) if isinstance(peer, tuple) else (request.remote or "", 0)
        self.ip_address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # Go's RemoteAddr().String()
        self.connected_at = go_time()
        self.events: dict[str, None] = {}  # in subscription order
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(queue)  # a subscriber's frames, not yet sent
        self.queued = 0  # bytes in the queue
        self.transport = request.transport
        self.sender: asyncio.Task[None] | None = None
        self.handler = asyncio.current_task()  # aiohttp's task for this request, which reads the socket
        self.interrupt: asyncio.Timeout | None = None  # around the handler's reads, to stop them from outside
        self.closing: tuple[int, str] | None = None  # the close code and reason, once decided
        self.finished = asyncio.Event()  # set when the handler is done with the socket

    def info(self) -> dict[str, str]:
        """This connection in ``/info`` (PiCloud's connectionInfo)."""
        return {"client_name": self.client_name, "ip_address": self.ip_address, "connected_at": self.connected_at}

    @property
    def backlog(self) -> int:
        """Bytes published to this subscriber and not yet taken by the kernel: its queue and its write buffer."""
        return self.queued + (self.transport.get_write_buffer_size() if self.transport is not None else 0)

    def put(self, data: bytes) -> None:
        self.queue.put_nowait(data)
        self.queued += len(data)

    def drop(self) -> None:
        """Free the queued frames now: they will never be sent, and the closing handshake of a peer that does
        not read takes ``close_timeout``."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queued = 0

    async def send(self) -> None:
        """Hand the queued frames to the socket, one at a time, until cancelled or the peer is gone."""
        with contextlib.suppress(ConnectionError):  # aiohttp's ClientConnectionResetError: the read side notices
            while True:
                data = await self.queue.get()
                self.queued -= len(data)  # the transport's buffer counts it from here on
                await self.ws.send_frame(data, WSMsgType.TEXT)  # the shared bytes: no copy per subscriber

    def shut(self, code: int, reason: str) -> None:
        """Have the handler close the socket with ``code`` (the first code decided wins); never waits."""
        if self.closing is not None:
            return
        self.closing = (code, reason)
        self.drop()
        if self.sender is not None:
            self.sender.cancel()  # it may be stuck on a peer that does not read
        if self.interrupt is not None and asyncio.current_task() is not self.handler:
            # stop the handler's read: aiohttp's close from another task would cut the TCP connection without
            # waiting for the peer's close frame, which clients then report as 1006
            self.interrupt.reschedule(asyncio.get_running_loop().time())
