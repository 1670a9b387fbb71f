"""The point-of-entry log: one line each time this node became the network's point of entry.

The file keeps v1's poe.log form (Python logging's ``INFO:root:`` and a naive local timestamp), so a node
that swaps its v1 scripts for nutbridge keeps its history; announcements carry its newest lines, newest
first, as v1 peers expect in the device list's ``log``. Past MAX_FILE it is set aside whole under a dated
name (``poe.log.2026-12-07``) and starts again from its newest lines: no line is ever lost (a v1 node's log
is its history), and the file announcements read stays small.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

from nutbridge.files import describe, replace_atomically
from nutbridge.peers.entry import LOG_ENTRY

log = logging.getLogger(__name__)

PREFIX = "INFO:root:"
SENT = 216  # lines an announcement carries (v1's newest scripts send as many)
MAX_FILE = 1024 * 1024  # past this (some 28,000 lines) the file is set aside and begins again
TAIL = 32 * 1024  # what is read for the newest lines: SENT lines are some 8 KiB


class PoeLog:
    """The log at ``path``; its methods block (call them from a thread in the event loop)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, when: dt.datetime) -> None:
        """Record becoming point of entry at ``when`` (naive local time, as v1 writes it)."""
        line = f"{PREFIX}{when.replace(tzinfo=None)}\n".encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, line)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size > MAX_FILE:
                kept = reversed(self.newest(SENT))
                os.link(self.path, self.aside(when.date()))  # the whole file, under another name, first
                replace_atomically(self.path, "".join(f"{PREFIX}{e}\n" for e in kept).encode())
        except OSError as exc:
            log.warning("cannot record the point-of-entry event in %s: %s", self.path, describe(exc))

    def aside(self, day: dt.date) -> Path:
        """A name for the full log set aside on ``day`` that no file has yet."""
        name = self.path.with_name(f"{self.path.name}.{day.isoformat()}")
        number = 1
        while name.exists():
            number += 1
            name = self.path.with_name(f"{self.path.name}.{day.isoformat()}.{number}")
        return name

    def newest(self, count: int = SENT) -> list[str]:
        """The newest ``count`` timestamps, newest first; lines that are not timestamps are skipped."""
        try:
            with self.path.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                start = max(0, size - TAIL)
                f.seek(start)
                data = f.read(TAIL)
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("cannot read %s: %s", self.path, describe(exc))
            return []
        lines = data.decode(errors="replace").split("\n")
        if start:
            lines = lines[1:]  # begun mid-line
        entries = [line.removeprefix(PREFIX).strip() for line in lines]
        return [e for e in entries[::-1] if is_timestamp(e)][:count]


def is_timestamp(entry: str) -> bool:
    """A v1 log entry: a timestamp short enough for the device list."""
    try:
        dt.datetime.fromisoformat(entry)
    except ValueError:
        return False
    return bool(LOG_ENTRY.match(entry))
