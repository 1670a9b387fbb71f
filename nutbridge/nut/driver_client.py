"""Ask a running driver on its socket as upsd does (``PING``, ``DUMPALL``): what ``nutbridge doctor`` and
``nutbridge status`` read in driver mode, without upsd in between. Blocking, with a deadline: the commands are
short-lived processes, not the daemon."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from nutbridge.nut.sock_wire import split

MAX_DUMP = 1024 * 1024  # bytes of a dump read at most: a driver publishes a few kilobytes


@dataclass(frozen=True, slots=True)
class DriverDump:
    """What the driver said: its variables (SETINFO), whether it calls them stale, and its commands (ADDCMD)."""

    values: dict[str, str]
    stale: bool
    commands: list[str] = field(default_factory=list)


def socket_path(ups: str, statepath: Path, driver: str = "nutbridge") -> Path:
    """Where NUT's programs look for ``driver``'s socket for ``ups``: ``<statepath>/<driver>-<ups>``."""
    return statepath / f"{driver}-{ups}"


class DriverClient:
    """One connection to a driver's socket; every call raises OSError (TimeoutError too) or WireError."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.buffer = b""
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(str(path))
        except OSError:
            self.sock.close()
            raise

    def __enter__(self) -> DriverClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def line(self) -> list[str]:
        """The next line the driver sends, as words."""
        while b"\n" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0 or len(self.buffer) > MAX_DUMP:
                raise TimeoutError("the driver did not finish its answer in time")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the driver closed the connection")
            self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\n")
        return split(raw.decode("utf-8", "replace"))

    def ping(self) -> None:
        """PING, and wait for its PONG (broadcast updates on the way are skipped)."""
        self.send("PING")
        while self.line()[:1] != ["PONG"]:
            pass

    def dump(self) -> DriverDump:
        """DUMPALL up to DUMPDONE: the variables, and stale as the last DATAOK/DATASTALE says."""
        self.send("DUMPALL")
        values: dict[str, str] = {}
        commands: list[str] = []
        stale = False
        while True:
            words = self.line()
            if not words:
                continue
            verb = words[0]
            if verb == "DUMPDONE":
                return DriverDump(values, stale, commands)
            if verb == "SETINFO" and len(words) >= 3:
                values[words[1]] = words[2]
            elif verb == "DELINFO" and len(words) >= 2:
                values.pop(words[1], None)
            elif verb == "ADDCMD" and len(words) >= 2:
                commands.append(words[1])
            elif verb in ("DATASTALE", "DATAOK"):
                stale = verb == "DATASTALE"


def read_driver(path: Path, timeout: float) -> DriverDump:
    """PING then DUMPALL on the driver's socket ``path``; OSError when it does not answer, WireError
    for a line NUT's parser would refuse."""
    with DriverClient(path, timeout) as client:
        client.ping()
        return client.dump()
