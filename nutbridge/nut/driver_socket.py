"""NUT's driver socket, served as NUT's own drivers serve it (docs/sock-protocol.txt, drivers/dstate.c): a sink
that upsd (and upsdrvctl, or a person with socat) connects to at ``<statepath>/<driver>-<UPS>``.

Each poll's changed variables go to every connection that did not ask for NOBROADCAST, as SETINFO/DELINFO with
DATAOK when the data was stale; a lost device sends DATASTALE once and keeps the values, as NUT's drivers do (a
failing one within the grace changes nothing). Requests: PING, DUMPALL (DUMPSTATUS, DUMPVALUE), GETPID, LOGOUT,
NOBROADCAST/BROADCAST, INSTCMD and SET with their TRACKING answers (with NUT's own driver.exit and driver.reload).
The words and the dump are sock_wire.py's and driver_state.py's; this module owns the socket file and the
connections.

Limits: MAX_CONNECTIONS at once (past it a new one is closed at once), MAX_LINE bytes a request line (upsd's are
under 512), MAX_BACKLOG bytes unread by a client before it is dropped (the poll never waits for a reader); a
line that is not parseconf text closes its connection only. A well-formed command the driver does not know is
logged and ignored, as dstate.c does, so a newer upsd's requests do not cut the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from nutbridge.errors import NutbridgeError
from nutbridge.files import describe
from nutbridge.nut.driver_state import CmdStatus, DriverState, SetStatus
from nutbridge.nut.sock_wire import WireError, split
from nutbridge.sinks import Wants
from nutbridge.snapshot import Comms, Snapshot
from nutbridge.tasks import Background

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 16
MAX_LINE = 4096  # bytes; upsd builds its requests in 512-byte buffers
MAX_BACKLOG = 256 * 1024  # bytes written to a client and not yet read by it
HANDLER_TIMEOUT = 10.0  # s; under a third of upsd's MAXAGE (15 s): its PINGs on that connection wait meanwhile
SOCKET_MODE = 0o660  # dstate.c's: upsd may run as another user of the same group
SUN_PATH_MAX = 107  # sockaddr_un.sun_path on Linux, less its NUL

# What NUT's drivers do for any driver, unlisted (main.c main_instcmd): NUT 2.8.5's upsdrvctl stops a driver
# with driver.exit when it has no PID file, and a new driver asks the one it replaces to leave with it.
OWN_COMMANDS = {"driver.exit": signal.SIGTERM, "driver.reload": signal.SIGHUP}

Command = Callable[[str | None], Awaitable[int]]
Setter = Callable[[str], Awaitable[int]]


class DriverSocketError(NutbridgeError):
    """The driver socket could not be set up."""


class _Connection:
    """One client: its writer and whether it wants broadcasts."""

    def __init__(self, writer: asyncio.StreamWriter, number: int) -> None:
        self.writer = writer
        self.name = f"connection {number}"
        self.broadcast = True

    def __str__(self) -> str:
        return self.name

    @property
    def closing(self) -> bool:
        return self.writer.is_closing()

    def send(self, lines: list[str]) -> None:
        """Queue ``lines`` without waiting; a client that leaves too much unread is dropped."""
        if not lines or self.closing:
            return
        self.writer.write("".join(line + "\n" for line in lines).encode())
        if self.writer.transport.get_write_buffer_size() > MAX_BACKLOG:
            log.warning("driver socket: %s leaves more than %d bytes unread; closed", self, MAX_BACKLOG)
            self.writer.transport.abort()

    def close(self) -> None:
        self.writer.close()


class DriverSocket:
    """The listening socket at ``path`` and its connections; an async context manager, and a sink.

    Args:
        path: the socket file, ``<statepath>/<driver>-<UPS>``; replaced atomically when entered, removed when left.
        static: variables no poll changes (driver.name, driver.version, driver.parameter.*).
        commands: instant commands (ADDCMD) → their handler, given the command's parameter, answering a
            CmdStatus code.
        settable: variables clients may set (SETFLAGS RW) → their handler, given the new value, answering a
            SetStatus code; the value is published at once when it answers HANDLED.
        states: publish ``driver.state`` as NUT's drivers do from 2.8.1 (main.c): ``init.info`` until the first
            good poll, ``quiet`` while polling, ``reconnect.trying`` while the device is lost, ``cleanup.exit`` as
            the driver stops. (``updateinfo`` during each poll is left out: two broadcasts a poll for nothing.)
    """

    wants: ClassVar[Wants] = Wants.NEWEST

    def __init__(
        self,
        path: Path,
        *,
        static: Mapping[str, str] = {},
        commands: Mapping[str, Command] = {},
        settable: Mapping[str, Setter] = {},
        states: bool = True,
    ) -> None:
        self.path = path
        self.commands = dict(commands)
        self.settable = dict(settable)
        self.state = DriverState(static=static, commands=self.commands, settable=self.settable)
        self.states = states
        self._driver_state("init.info")
        self._connections: set[_Connection] = set()
        self._count = 0
        self._server: asyncio.Server | None = None
        self._tasks: Background | None = None
        self._inode: tuple[int, int] | None = None

    def __str__(self) -> str:
        return f"driver socket {self.path}"

    @property
    def connections(self) -> int:
        """How many clients are connected now."""
        return len(self._connections)

    # ---------------------------------------------------------------- the socket file

    def _listen(self) -> socket.socket:
        """Bind a new socket beside ``path``, make it 0660, listen, and rename it over ``path``: upsd finds either
        the old socket or the new one there, never none; a stale one left by a crash is replaced."""
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        if len(os.fsencode(temp)) > SUN_PATH_MAX:
            raise DriverSocketError(f"{self}: the path is longer than a Unix socket's {SUN_PATH_MAX} bytes")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            sock.bind(os.fsdecode(temp))
            try:
                temp.chmod(SOCKET_MODE)
                sock.listen(MAX_CONNECTIONS)
                os.replace(temp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    temp.unlink()
                raise
            st = self.path.stat()
            self._inode = (st.st_dev, st.st_ino)
        except OSError as exc:
            sock.close()
            raise DriverSocketError(f"cannot listen on {self.path}: {describe(exc)}") from exc
        return sock

    def _remove(self) -> None:
        """Remove the socket file if it is still ours (a newer instance may have replaced it)."""
        try:
            st = self.path.stat()
            if (st.st_dev, st.st_ino) == self._inode:
                self.path.unlink()
        except OSError as exc:
            if not isinstance(exc, FileNotFoundError):
                log.warning("%s: cannot remove it: %s", self, describe(exc))

    async def __aenter__(self) -> Self:
        sock = self._listen()
        tasks = Background()
        await tasks.__aenter__()
        self._tasks = tasks
        try:
            self._server = await asyncio.start_unix_server(self._accept, sock=sock, limit=MAX_LINE)
        except BaseException as exc:
            sock.close()
            self._remove()
            await tasks.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        log.info("%s: listening", self)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        server, self._server = self._server, None
        tasks, self._tasks = self._tasks, None
        self._broadcast(self._driver_state("cleanup.exit"))
        if server is not None:
            server.close()
        self._remove()
        for connection in list(self._connections):
            connection.close()
        if tasks is not None:
            await tasks.__aexit__(exc_type, exc, tb)

    # ---------------------------------------------------------------- the sink

    async def update(self, snapshot: Snapshot) -> None:
        """A good poll's changes (and DATAOK after stale data); DATASTALE once when the device is lost."""
        if snapshot.ok:
            lines = self.state.apply(snapshot.variables) + self._driver_state("quiet") + self.state.mark_ok()
        elif snapshot.comms is Comms.LOST:
            lines = self._driver_state("reconnect.trying") + self.state.mark_stale()
        else:
            return  # failing within the grace: NUT keeps seeing the last values as good
        self._broadcast(lines)

    def _driver_state(self, value: str) -> list[str]:
        """driver.state's change, if this NUT has it."""
        return self.state.own("driver.state", value) if self.states else []

    def _broadcast(self, lines: list[str]) -> None:
        for connection in list(self._connections):
            if connection.broadcast:
                connection.send(lines)

    # ---------------------------------------------------------------- connections

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._count += 1
        connection = _Connection(writer, self._count)
        if self._tasks is None or len(self._connections) >= MAX_CONNECTIONS:
            log.warning("%s: %d connections already; %s closed", self, len(self._connections), connection)
            writer.transport.abort()
            return
        self._connections.add(connection)
        log.debug("%s: %s opened", self, connection)
        self._tasks.start(self._serve(connection, reader), name=f"nutbridge.{self}.{connection}")

    async def _serve(self, connection: _Connection, reader: asyncio.StreamReader) -> None:
        """Answer one client's requests, in order, until it leaves, logs out or sends what is not a request."""
        try:
            while not connection.closing:
                try:
                    raw = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    return  # the client left (a last unfinished line is dropped)
                except asyncio.LimitOverrunError:
                    log.warning("%s: %s sent a line longer than %d bytes; closed", self, connection, MAX_LINE)
                    return
                try:
                    words = split(_text(raw))
                except WireError as exc:
                    log.warning("%s: %s sent %r: %s; closed", self, connection, raw[:80], exc)
                    return
                if words and not await self._answer(connection, words):
                    return
        except ConnectionError:
            return
        finally:
            self._connections.discard(connection)
            connection.close()
            log.debug("%s: %s closed", self, connection)

    async def _answer(self, connection: _Connection, words: list[str]) -> bool:
        """Answer one request; False when the connection should close (LOGOUT)."""
        verb, args = words[0].upper(), words[1:]
        if verb == "PING":
            connection.send(["PONG"])
        elif verb == "DUMPALL":
            connection.send(self.state.dump())
        elif verb == "DUMPSTATUS":
            connection.send(self.state.dump(only="ups.status"))
        elif verb == "DUMPVALUE" and args:
            connection.send(self.state.dump(only=args[0]))
        elif verb == "GETPID":
            connection.send([f"PID {os.getpid()}"])
        elif verb == "LOGOUT":
            connection.send(["OK Goodbye"])
            with contextlib.suppress(ConnectionError):
                await connection.writer.drain()
            return False
        elif verb == "NOBROADCAST":
            connection.broadcast = False
        elif verb == "BROADCAST":
            number = _int(args[0]) if args else None  # BROADCAST 0 (or less) turns them off, as dstate.c does
            connection.broadcast = number is None or number >= 1
        elif verb == "INSTCMD" and args:
            await self._instcmd(connection, args)
        elif verb == "SET" and len(args) >= 2:
            await self._set(connection, args)
        else:
            log.info("%s: %s: unknown command %s", self, connection, " ".join(words)[:200])
        return True

    async def _instcmd(self, connection: _Connection, args: list[str]) -> None:
        """INSTCMD name [param] [TRACKING id], parsed as dstate.c does."""
        name, param, tracking = args[0], None, None
        if len(args) == 2:
            param = args[1]
        elif len(args) == 3 and args[1].upper() == "TRACKING":
            tracking = args[2]
        elif len(args) == 4 and args[2].upper() == "TRACKING":
            param, tracking = args[1], args[3]
        elif len(args) != 1:
            log.info("%s: %s: malformed INSTCMD %s", self, connection, " ".join(args)[:200])
            return
        handler = self.commands.get(name)
        if name in OWN_COMMANDS:  # drivers/main.c handles these for every driver; a signal takes our usual path
            log.info("%s: INSTCMD %s: %s", self, name, OWN_COMMANDS[name].name)
            os.kill(os.getpid(), OWN_COMMANDS[name])
            status = int(CmdStatus.HANDLED)
        elif handler is None:
            log.info("%s: INSTCMD %s: no such command", self, name)
            status = int(CmdStatus.UNKNOWN)
        else:
            status = await self._run(f"INSTCMD {name}", handler(param), failed=CmdStatus.FAILED)
        if tracking is not None:
            connection.send([f"TRACKING {tracking} {status}"])

    async def _set(self, connection: _Connection, args: list[str]) -> None:
        """SET name value [TRACKING id], parsed as dstate.c does."""
        name, value, tracking = args[0], args[1], None
        if len(args) == 4 and args[2].upper() == "TRACKING":
            tracking = args[3]
        elif len(args) != 2:
            log.info("%s: %s: malformed SET %s", self, connection, " ".join(args)[:200])
            return
        handler = self.settable.get(name)
        if handler is None:
            log.info("%s: SET %s: not settable", self, name)
            status = int(SetStatus.UNKNOWN)
        else:
            status = await self._run(f"SET {name}", handler(value), failed=SetStatus.FAILED)
            if status == SetStatus.HANDLED:  # as NUT's drivers do in their setvar: the new value is seen at once
                self._broadcast(self.state.apply({name: value}))
        if tracking is not None:
            connection.send([f"TRACKING {tracking} {status}"])

    async def _run(self, what: str, work: Awaitable[int], *, failed: int) -> int:
        """A handler's status; ``failed`` when it raises or takes longer than HANDLER_TIMEOUT."""
        try:
            async with asyncio.timeout(HANDLER_TIMEOUT):
                status = int(await work)
        except Exception as exc:  # the boundary: a handler's failure is the client's answer, not ours
            message = "no answer in time" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            log.warning("%s: %s failed: %s", self, what, message)
            return int(failed)
        log.info("%s: %s: status %d", self, what, status)
        return status


def _text(raw: bytes) -> str:
    """A request line as text; bytes that are not printable ASCII (bar tabs and line ends) make it garbage."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise WireError("not ASCII text") from None
    if any(ch < " " and ch not in "\t\r\n" for ch in text) or "\x7f" in text:
        raise WireError("control characters")
    return text


def _int(word: str) -> int | None:
    try:
        return int(word)
    except ValueError:
        return None
