"""The sidecar's door: at most ``max_connections`` at once, and a deadline for a request's head.

aiohttp caps a request's lines, headers and body, and closes idle keep-alive connections, but it takes any
number of connections and waits forever for a head that arrives a byte at a time (slowloris). The gate is an
asyncio protocol factory in front of aiohttp's own: a connection over the cap gets a 503 and is closed at once;
one whose first request head is not complete within ``head_timeout`` seconds is closed. Everything else is
handed to aiohttp unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

log = logging.getLogger(__name__)

FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 5\r\n"
    b"Connection: close\r\nContent-Length: 33\r\n\r\ntoo many connections; try again\r\n"
)
HEAD_END = b"\r\n\r\n"


class Gate:
    """Builds the protocol of each new connection; counts the open ones."""

    def __init__(
        self, factory: Callable[[], asyncio.Protocol], *, max_connections: int, head_timeout: float, name: str
    ) -> None:
        self.factory = factory
        self.max_connections = max_connections
        self.head_timeout = head_timeout
        self.name = name
        self.open = 0
        self.refused = 0  # connections over the cap
        self.timed_out = 0  # heads that did not arrive in time
        self._warned = False

    def __call__(self) -> asyncio.BaseProtocol:
        if self.open >= self.max_connections:
            self.refused += 1
            if not self._warned:  # once per flood
                self._warned = True
                log.warning("%s: %d connections open, the most it takes; refusing more", self.name, self.open)
            return Refuse()
        self.open += 1  # now, not at connection_made: a burst of accepts comes before any of those
        return Counted(self, self.factory())

    def closed(self) -> None:
        """One connection less; a flood is over once half the cap is free again."""
        self.open -= 1
        if self._warned and self.open < self.max_connections // 2:
            self._warned = False
            log.info("%s: %d connections open again; refused %d in all", self.name, self.open, self.refused)


class Refuse(asyncio.Protocol):
    """Answers 503 and closes: the connection never reaches aiohttp."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        writer = cast(asyncio.Transport, transport)
        writer.write(FULL)
        writer.close()


class Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, counted, with a deadline for the head of its first request."""

    def __init__(self, gate: Gate, inner: asyncio.Protocol) -> None:
        self.gate, self.inner = gate, inner
        self.transport: asyncio.Transport | None = None
        self.head = b""  # the last bytes of the first request's head so far
        self.head_done = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.timer = asyncio.get_running_loop().call_later(self.gate.head_timeout, self.too_slow)
        self.inner.connection_made(transport)

    def too_slow(self) -> None:
        self.gate.timed_out += 1
        log.debug("%s: a request head took over %g s; closed", self.gate.name, self.gate.head_timeout)
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self.head_done:
            self.head = self.head[-3:] + data  # the end of the head may straddle two reads
            if HEAD_END in self.head:
                self.head_done = True
                if self.timer is not None:
                    self.timer.cancel()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.closed()
        if self.timer is not None:
            self.timer.cancel()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
