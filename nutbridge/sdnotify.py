"""systemd's notification protocol (sd_notify) with the standard library: datagrams to ``$NOTIFY_SOCKET``.

Under ``Type=notify`` the daemon says READY=1 after its first poll, its state in words (STATUS=) on each
change, STOPPING=1 when it stops, and WATCHDOG=1 every half ``WatchdogSec`` from a task of its own, only
while the poll loop progresses (``Monitor.stalled``): a poll that never returns or a blocked event loop
stops the pings, and systemd restarts the daemon. Outside systemd all of it is a no-op; a failure to send
is logged once and never raised into the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, MutableMapping
from typing import ClassVar, Protocol

from nutbridge.files import describe
from nutbridge.sinks import Wants
from nutbridge.snapshot import Comms, Snapshot

log = logging.getLogger(__name__)

ENVIRONMENT = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
MAX_VALUE = 400  # characters of one value: STATUS carries an error message of any length


class Notifier:
    """Sends ``KEY=value`` lines to systemd. ``address`` is ``$NOTIFY_SOCKET``'s form: a path, or ``@name``
    in the abstract namespace; None sends nothing. ``watchdog`` is WatchdogSec in seconds, when systemd
    watches this process."""

    def __init__(self, address: str | None, watchdog: float | None = None) -> None:
        self.address = address
        self.watchdog = watchdog
        self._socket: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str] | None = None) -> Notifier:
        """From ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` (ours only when ``$WATCHDOG_PID``, if set, is our pid).

        The three are removed from the environment, as ``sd_notify(unset_environment=1)`` does, so the
        commands the daemon runs (``upsdrvctl``, a driver restart command) never speak for it.
        """
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        for name in ENVIRONMENT:
            env.pop(name, None)
        watchdog = None
        if usec:
            if not (usec.isascii() and usec.isdigit()) or int(usec) == 0 or (pid and pid != str(os.getpid())):
                log.debug("WATCHDOG_USEC=%r for pid %r is not a watchdog on this process", usec, pid)
            else:
                watchdog = int(usec) / 1e6
        return cls(address, watchdog)

    def send(self, **fields: str) -> bool:
        """One datagram of ``KEY=value`` lines; False when there is no socket or it failed (logged once)."""
        if self.address is None:
            return False
        data = "".join(f"{key}={one_line(value)}\n" for key, value in fields.items()).encode(errors="replace")
        try:
            target = socket_address(self.address)
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)  # a full queue at systemd's end must never block the loop
            self._socket.sendto(data, target)
        except (OSError, ValueError) as exc:
            if not self._failing:
                message = describe(exc) if isinstance(exc, OSError) else str(exc)
                log.warning("notifying systemd at %s failed (it may restart nutbridge): %s", self.address, message)
                self._failing = True
            return False
        if self._failing:
            log.info("notifying systemd at %s works again", self.address)
            self._failing = False
        return True

    def close(self) -> None:
        """Close the socket, if one was opened."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def socket_address(address: str) -> bytes:
    """``$NOTIFY_SOCKET`` as a socket address: a path, or ``@name`` for the abstract namespace."""
    if address.startswith("@"):
        return b"\0" + address[1:].encode()
    if address.startswith("/"):
        return os.fsencode(address)
    raise ValueError(f"NOTIFY_SOCKET={address!r} is neither a path nor @name")


def one_line(value: str) -> str:
    """``value`` with control characters (a newline would start another assignment) made spaces, cut short."""
    clean = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in value)
    return clean if len(clean) <= MAX_VALUE else clean[: MAX_VALUE - 1] + "…"


def status_words(s: Snapshot) -> str:
    """A poll in words for ``systemctl status``: "OL CHRG, battery 71 %, PV 88 W", or what went wrong."""
    if s.comms is Comms.OK and s.reading is not None:
        words = [s.variables.get("ups.status") or "no status"]
        if s.reading.battery_charge is not None:
            words.append(f"battery {s.reading.battery_charge:.0f} %")
        if s.reading.pv_power is not None:
            words.append(f"PV {s.reading.pv_power:.0f} W")
        return ", ".join(words)
    since = time.strftime("%H:%M:%S", time.localtime(s.time - s.silent_for))
    if s.comms is Comms.LOST:
        return f"comms lost since {since}: {s.error}"
    return f"no answer since {since}, NUT keeps the last values: {s.error}"


def ago(seconds: float) -> str:
    """``2 s``, ``14 min``: how long ago, for a person."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class Progress(Protocol):
    """What the watchdog asks the poll loop (``Monitor``)."""

    def stalled(self, excused: float = 0.0) -> str | None: ...


class Systemd:
    """The daemon's side of the unit: a sink for READY=1 and STATUS=, and the watchdog task (``watchdog``).

    ``clock`` (monotonic) times the polls as they arrive, for STATUS's "last poll 4 s ago".
    """

    wants: ClassVar[Wants] = Wants.NEWEST

    def __init__(self, notifier: Notifier, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        self.clock = clock
        self.ready = False
        self._polled_at: float | None = None  # ``clock`` time the last poll arrived
        self._words = "starting"  # the last poll in words
        self._stall: str | None = None
        self._stopping = False
        self._sent: str | None = None  # the last STATUS sent

    def __str__(self) -> str:
        return "systemd notification"

    async def update(self, snapshot: Snapshot) -> None:
        """Each poll: READY=1 after the first, good or failed; STATUS= when the words change."""
        self._words, self._polled_at = status_words(snapshot), self.clock()
        self.tell(**({} if self.ready else {"READY": "1"}))

    def tell(self, **fields: str) -> None:
        """Send ``fields``, and STATUS= too when it changed; READY=1 among them makes the unit ready."""
        status = self.status()
        if status != self._sent:
            fields["STATUS"] = status
        if fields and self.notifier.send(**fields):
            self._sent = fields.get("STATUS", self._sent)
            self.ready = self.ready or "READY" in fields  # else the next poll says it again

    def serving(self, words: str) -> None:
        """READY=1 for a daemon that does not poll (``--no-poll``), once its listener is up."""
        self._words = words
        self.tell(READY="1")

    def stopping(self) -> None:
        """STOPPING=1: the daemon stops of its own accord (SIGTERM, SIGINT)."""
        self._words, self._stopping = "stopping", True
        self.tell(STOPPING="1")

    def status(self) -> str:
        """STATUS= now: the last poll and how long ago it ended, or why the watchdog is no longer pinged."""
        if self._stall is not None:
            return f"stalled: {self._stall}; no watchdog pings, so systemd restarts nutbridge"
        if self._polled_at is None or self._stopping:
            return self._words
        return f"{self._words}, last poll {ago(self.clock() - self._polled_at)} ago"

    async def watchdog(self, progress: Progress | None = None) -> None:
        """WATCHDOG=1 every half WatchdogSec while the polls progress, until cancelled; nothing without one.
        ``progress`` is the poll loop (the Monitor); without one (``--no-poll``) the pings go on while the event
        loop runs.

        Before READY, each ping also extends the start timeout (EXTEND_TIMEOUT_USEC), so a first poll that
        legitimately takes long (retrying a silent device at a long interval) is not cut short by
        TimeoutStartSec, while a hung one is.
        """
        if self.notifier.watchdog is None:
            return
        tick = self.notifier.watchdog / 2
        log.debug("systemd watchdog: a ping every %g s while the polls progress", tick)
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            late = max(0.0, loop.time() - due)  # the event loop was blocked this long: no poll could run either
            stall = progress.stalled(late) if progress is not None else None
            if stall is not None and self._stall is None:
                log.error("%s: no more watchdog pings, so systemd restarts nutbridge", stall)
            elif stall is None and self._stall is not None:
                log.warning("the polls progress again; watchdog pings resume")
            self._stall = stall
            fields = {} if stall else {"WATCHDOG": "1"}
            if not stall and not self.ready:
                fields["EXTEND_TIMEOUT_USEC"] = str(round(self.notifier.watchdog * 1e6))
            self.tell(**fields)
            due = loop.time() + tick
            await asyncio.sleep(tick)
