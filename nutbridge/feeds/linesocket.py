"""The TCP line protocol of Hubitat-style raw-socket clients: one query a line, one reply line a query.

Protocol (the README repeats it):

- A query is a line ending in ``\\n`` or ``\\r\\n`` (a lone ``\\r`` inside a line separates queries too),
  matched case-insensitively, blanks around it ignored. Several queries in one packet are answered in order.
  A blank line is a keepalive and gets no answer. A last line without an ending is answered at end of input.
- Every reply is one line, sent in one write: ``success: <Name> <value>`` with the name spelled as in the
  table below whatever case the query used, or ``error: <why>``. Plain ASCII, ``.`` as decimal point, no units.
- Queries:

  ==========  ==========================================================================================
  PowerNow    PV power, W (integer)
  PowerToday  PV energy today as the device counts it, Wh (integer)
  PowerTotal  PV energy in total, Wh (integer)
  Status      7 generating (PV above 0 W); 6 normal, not generating (0 W but PV voltage above the battery's:
              the panel could charge, e.g. the battery is full); 3 standby (0 W and no PV voltage, or none
              measured: night); 2 syncing (started, no poll has answered yet); 0 fault (the device reports
              one: ``ups.alarm``, ALARM); 1 comms lost (silent for the grace, NUT is told too)
  GridV       ``input.voltage`` of an AC input (a gateway's grid meter). A charge controller's input is its
              PV side, DC, with no ``input.frequency``: no grid, so ``error: not available``
  GridHZ      ``input.frequency``
  UpTime      seconds generating today: the time between two consecutive good polls counts when the first
              had PV above 0 W; split at local midnight, where the count starts again at 0
  TimeStamp   the last good poll's time, whole seconds since the epoch (UTC, no time zone to get wrong)
  a.nut.name  any NUT variable of the last good poll, as an extension: ``success: battery.charge 87``
  close       (or ``quit``, ``exit``) closes the connection; no reply, the client sees the end of the stream
  ==========  ==========================================================================================

- Errors: ``error: invalid query`` (an unknown query or NUT variable), ``error: no data`` (no poll has
  answered yet, or comms are lost), ``error: not available`` (this device does not measure it). While polls
  fail inside the grace the last good values are served, as NUT keeps them. Status never errs, and
  TimeStamp and UpTime describe the past, so they keep answering when comms are lost.
- Limits: a line longer than ``max_line`` bytes (its ending not counted) gets ``error: line too long`` and the
  connection is closed, as the rest of that line could not be told from the next query. The protocol has no
  authentication, so no one client may lock the others out: one address holds at most ``max_per_client``
  connections (a quarter of ``max_connections``, at least 8, unless set; beyond, ``error: too many connections
  from this address`` and the connection is closed), and when all ``max_connections`` are taken, the
  connection that has sent nothing for the longest is closed without a word to make room for the new one (as
  nginx drains idle keep-alive connections), and reconnects if it still wants answers. ``idle_timeout``
  seconds without a line closes the connection; TCP keepalive reaps half-open ones. Replies queue per client up to
  WRITE_BUFFER bytes; a client that does not read them for ``write_timeout`` seconds is cut off, and no client
  ever waits for another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Self

from nutbridge.config_sections import LineSocketConfig
from nutbridge.errors import NutbridgeError
from nutbridge.feeds.lineprotocol import LineAnswers
from nutbridge.sinks import Wants

log = logging.getLogger(__name__)

WRITE_BUFFER = 64 * 1024  # bytes of replies queued for one client before its writes wait
WRITE_TIMEOUT = 10.0  # s a client may leave a full write buffer unread before it is cut off
LINGER = 1.0  # s: after a last error reply, unread input is drained so that no reset destroys the reply
SHUTDOWN_GRACE = 1.0  # s queued replies may take to go out when the listener stops
FAIR_SHARE = 64  # queries of one packet answered before the other clients get their turn
KEEPALIVE = (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4))  # a dead peer goes in 2 minutes

CLOSE = frozenset({"close", "quit", "exit"})


TOO_LONG = "error: line too long"
TOO_MANY = "error: too many connections from this address"


@dataclass(eq=False, slots=True)
class Served:
    """A connection being served: its client's address (what ``max_per_client`` counts), its task, and the
    loop's time of its last line (what picks the one to close when all are taken)."""

    address: str
    who: str  # address:port, for the log
    task: asyncio.Task[Any] | None
    last: float


class SlowClient(NutbridgeError):
    """The client left its replies unread for too long."""


def set_keepalive(sock: Any) -> None:
    """TCP keepalive on an accepted socket, with Linux's (or macOS's) timers where the platform has them."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options = KEEPALIVE if hasattr(socket, "TCP_KEEPIDLE") else (("TCP_KEEPALIVE", 60), *KEEPALIVE[1:])
    for name, value in options:
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class LineSocket(LineAnswers):
    """A sink that answers line-protocol queries from the newest snapshot; listens while entered.

    ``port`` is the bound port once entered (0 in the configuration picks one). ``clock`` gives wall-clock
    time, for UpTime's reset at local midnight when no poll comes after it.
    """

    wants: ClassVar[Wants] = Wants.NEWEST

    def __init__(
        self, config: LineSocketConfig, *, clock: Callable[[], float] = time.time, write_timeout: float = WRITE_TIMEOUT
    ) -> None:
        if config.listen is None:
            raise NutbridgeError("[linesocket] listen is not set")
        self.config = config
        self.host, self.port = config.listen
        super().__init__(clock=clock)
        self.write_timeout = write_timeout
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}  # every connection, refused ones too
        self._served: set[Served] = set()
        self.per_client = config.max_per_client or max(8, config.max_connections // 4)
        self._closing = False

    def __str__(self) -> str:
        return f"line protocol on {self.host}:{self.port}"

    @property
    def connections(self) -> int:
        """The connections being served now."""
        return len(self._served)

    # --- the listener ---

    async def __aenter__(self) -> Self:
        try:
            self._server = await asyncio.start_server(
                self._serve, self.host, self.port, limit=self.config.max_line + 1, reuse_address=True
            )
        except OSError as exc:
            raise NutbridgeError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from exc
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("%s", self)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is None:
            return
        self._server.close()
        self._closing = True
        for task, writer in list(self._clients.items()):
            writer.close()  # a FIN to the client; replies already queued still go out, for a moment
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection, start to end."""
        task = asyncio.current_task()
        if task is not None:
            self._clients[task] = writer
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        who = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        writer.transport.set_write_buffer_limits(high=WRITE_BUFFER)
        with contextlib.suppress(OSError):
            set_keepalive(writer.get_extra_info("socket"))
        served = self._admit(address, who, task)
        abort = False
        why = "left"
        try:
            if served is None:
                await self._send(writer, TOO_MANY)
                await self._linger(reader, writer)
                return
            log.info("%s: %s connected", self, who)
            why = await self._converse(reader, writer, served)
        except SlowClient:
            why, abort = f"did not read its replies for {self.write_timeout:g} s", True
        except (ConnectionError, TimeoutError) as exc:
            why = f"connection lost: {exc}" if str(exc) else "connection lost"
        except asyncio.CancelledError:
            # Shutdown, or room made for another. The task is asyncio's (start_server's), and Python 3.11's
            # callback on it calls task.exception(), which raises for a cancelled task: so it must end normally.
            why = "closed at shutdown" if self._closing else "closed to make room for a new connection"
        except Exception:  # the boundary: one client's surprise must not reach the listener
            log.exception("%s: %s", self, who)
            why = "dropped after an error"
        finally:
            if served is not None:
                self._served.discard(served)
                log.info("%s: %s %s", self, who, why)
            if task is not None:
                self._clients.pop(task, None)
            await self._close(writer, abort)

    def _admit(self, address: str, who: str, task: asyncio.Task[Any] | None) -> Served | None:
        """Count a new connection in, closing the one idle the longest when all are taken; None when its
        address holds ``per_client`` already (a host that opens more takes no one's slot)."""
        held = sum(1 for s in self._served if s.address == address)
        if held >= self.per_client:
            log.warning("%s: %s refused, %d connections from %s already", self, who, held, address)
            return None
        now = asyncio.get_running_loop().time()
        if len(self._served) >= self.config.max_connections:
            idlest = min(self._served, key=lambda s: s.last)
            self._served.discard(idlest)  # its slot is the newcomer's from now: it is going
            log.warning("%s: all %d connections taken; closing %s, quiet for %.0f s, for %s", self,
                        self.config.max_connections, idlest.who, now - idlest.last, who)  # fmt: skip
            if idlest.task is not None:
                idlest.task.cancel()
        served = Served(address, who, task, now)
        self._served.add(served)
        return served

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, served: Served) -> str:
        """Answer lines until the client leaves; why the connection ends."""
        answered = 0
        while True:
            last = False
            try:
                async with asyncio.timeout(self.config.idle_timeout):
                    raw = await reader.readuntil(b"\n")
                served.last = asyncio.get_running_loop().time()
            except TimeoutError:
                return f"idle for {self.config.idle_timeout:g} s"
            except asyncio.IncompleteReadError as exc:
                raw, last = exc.partial, True  # end of input: answer a last line without an ending
            except asyncio.LimitOverrunError:
                await self._too_long(reader, writer)
                return "sent a line too long"
            body = raw.removesuffix(b"\n").removesuffix(b"\r")
            if len(body) > self.config.max_line:
                await self._too_long(reader, writer)
                return "sent a line too long"
            for part in body.split(b"\r"):
                query = part.decode("utf-8", "replace").strip()
                if query.lower() in CLOSE:
                    return "closed"
                reply = self.answer(query)
                if reply is None:
                    continue
                await self._send(writer, reply)
                answered += 1
                if answered % FAIR_SHARE == 0:
                    await asyncio.sleep(0)  # a long pipelined packet does not starve the other clients
            if last:
                return "left"

    async def _send(self, writer: asyncio.StreamWriter, reply: str) -> None:
        """One reply in one write; waits (never longer than write_timeout) only when the buffer is full."""
        writer.write(reply.encode() + b"\n")
        if writer.transport.get_write_buffer_size() <= WRITE_BUFFER:
            await writer.drain()  # returns at once; raises if the connection is gone
            return
        try:
            async with asyncio.timeout(self.write_timeout):
                await writer.drain()
        except TimeoutError as exc:
            raise SlowClient from exc

    async def _too_long(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._send(writer, TOO_LONG)
        await self._linger(reader, writer)

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Say we are done (FIN), then drain the input a moment: closing on unread input would send a reset,
        which may destroy the last reply before the client reads it."""
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(LINGER):
                while await reader.read(65536):
                    pass

    async def _close(self, writer: asyncio.StreamWriter, abort: bool) -> None:
        """Close, letting queued replies go out, but not for longer than write_timeout."""
        if abort:
            writer.transport.abort()
        else:
            writer.close()
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE if self._closing else self.write_timeout):
                await writer.wait_closed()
        except TimeoutError:
            writer.transport.abort()
        except OSError:
            pass
