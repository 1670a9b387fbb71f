"""The dummy-ups port file: merge generated variables into it, replace it atomically, hide it on comms loss.

Facts from real NUT 2.8.0 that shape this module (shared/reference/nut-and-enphase-monitor.md, part 2):
- dummy-ups in dummy-once mode re-reads the file only when its mtime moves to a new whole second, so two
  writes must never share one: a write gets the next free second as its mtime, at most one second
  ahead of the clock; past that (sub-second polling) it is deferred.
- Deleting a line does not delete the variable; ``name: ""`` does. A bare ``name:`` repeats the previous
  line's value, so it is never written.
- A ``#`` inside a value breaks the 2.8.0 parser, and values are cut at 127 characters.
- When the file disappears dummy-ups exits, so renaming it to ``<file>-nocomms`` makes upsd lose the driver.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import os
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from nutbridge.errors import PortFileError

MAX_SIZE = 256 * 1024  # a port file is a few hundred bytes; anything this big is not one
MAX_VALUE = 127  # dummy-ups truncates longer values
KEY_LINE = re.compile(r"^\s*([A-Za-z0-9_][A-Za-z0-9_.\-]*):(.*)$")
UNSAFE = re.compile(r'[#"\\\x00-\x1f\x7f]')  # what the dummy-ups tokenizer would misread


class Write(enum.Enum):
    """What ``PortFile.update`` did."""

    WRITTEN = "written"
    UNCHANGED = "unchanged"
    DEFERRED = "deferred"  # no free whole second for its mtime yet: dummy-once would miss it


def format_value(value: str | None) -> str:
    """A value as dummy-ups reads it back: cleaned, at most 127 characters, ``""`` for none."""
    if value is None:
        return '""'
    text = " ".join(UNSAFE.sub(" ", value).split())[:MAX_VALUE].strip()
    return text or '""'


def parse_values(text: str) -> dict[str, str]:
    """Variable → value for every ``name: value`` line (the last one wins, as in dummy-ups)."""
    values = {}
    for line in text.splitlines():
        match = KEY_LINE.match(line)
        if match:
            values[match[1]] = match[2].strip().strip('"')
    return values


def merge(text: str, values: Mapping[str, str | None]) -> str:
    """Update generated variables in place; keep every other line verbatim and in order; append new ones.

    A variable whose value is None is written as ``name: ""`` where the file has it, and not added
    where it doesn't.
    """
    out: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        match = KEY_LINE.match(line)
        if match and match[1] in values:
            name = match[1]
            seen.add(name)
            out.append(f"{name}: {format_value(values[name])}")
        else:
            out.append(line)
    out.extend(f"{n}: {format_value(v)}" for n, v in values.items() if n not in seen and v is not None)
    return "\n".join(out) + "\n"


def describe(exc: OSError) -> str:
    """A short, clear reason for a failed file operation."""
    if exc.errno == errno.ENOSPC:
        return "disk full"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "folder not writable"
    return exc.strerror or str(exc)


class PortFile:
    """One port file and its ``-nocomms`` twin. Which of the two exists is the comms state NUT sees."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.hidden_path = path.with_name(path.name + "-nocomms")
        self.hidden = False
        self._last_mtime = -1  # whole second of our last write

    def __str__(self) -> str:
        return str(self.path)

    def locate(self) -> None:
        """Find which name exists now. Neither → error: the file must exist, so we run on the right machine."""
        if self.path.is_file():
            self.hidden = False
        elif self.hidden_path.is_file():
            self.hidden = True
        else:
            raise PortFileError(
                f"port file {self.path} does not exist (nor {self.hidden_path.name}); create it first, "
                f"e.g. with 'touch {self.path}', and point ups.conf's port= at it"
            )
        self._last_mtime = int(self.current.stat().st_mtime)

    @property
    def current(self) -> Path:
        """The name the file has now."""
        return self.hidden_path if self.hidden else self.path

    def read(self) -> str:
        """The file's text; bytes that are not UTF-8 survive the round trip unchanged."""
        try:
            with self.current.open("rb") as f:
                data = f.read(MAX_SIZE + 1)
        except OSError as exc:
            raise PortFileError(f"cannot read {self.current}: {describe(exc)}") from exc
        if len(data) > MAX_SIZE:
            raise PortFileError(f"{self.current} is over {MAX_SIZE // 1024} KiB; is it really a port file?")
        return data.decode("utf-8", "surrogateescape")

    def update(self, values: Mapping[str, str | None], old: str | None = None) -> Write:
        """Merge ``values`` into the file and replace it if anything changed; ``old`` is its text, if just read."""
        old = self.read() if old is None else old
        new = merge(old, values)
        if new == old:
            return Write.UNCHANGED
        # Each write gets its own whole-second mtime; it may run at most one second ahead of the clock.
        mtime = max(int(time.time()), self._last_mtime + 1)
        if mtime > time.time() + 1:
            return Write.DEFERRED
        self._replace(new.encode("utf-8", "surrogateescape"), mtime)
        return Write.WRITTEN

    def _replace(self, data: bytes, mtime: int) -> None:
        """Temp file in the same folder, fsync, rename: a reader sees the old file or the new one, whole."""
        target = self.current
        try:
            st = target.stat()
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise PortFileError(f"cannot replace {target}: {describe(exc)}; the file is unchanged") from exc
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fchmod(f.fileno(), st.st_mode & 0o7777)
                if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                    with contextlib.suppress(PermissionError):  # not root: the file becomes ours, same mode
                        os.fchown(f.fileno(), st.st_uid, st.st_gid)
                os.fsync(f.fileno())
            if int(os.stat(tmp).st_mtime) != mtime:
                os.utime(tmp, (mtime, mtime))
            os.replace(tmp, target)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise PortFileError(f"cannot replace {target}: {describe(exc)}; the file is unchanged") from exc
        self._last_mtime = mtime
        sync_folder(target.parent)

    def hide(self) -> bool:
        """Rename to ``<file>-nocomms`` (dummy-ups exits, upsd loses the driver). False if already hidden."""
        if self.hidden:
            return False
        self._rename(self.path, self.hidden_path)
        self.hidden = True
        return True

    def restore(self) -> bool:
        """Rename ``<file>-nocomms`` back. False if it was not hidden."""
        if not self.hidden:
            return False
        if self.path.exists():  # somebody put a new file in place meanwhile: that one wins
            self.hidden = False
            return True
        self._rename(self.hidden_path, self.path)
        self.hidden = False
        return True

    def _rename(self, src: Path, dst: Path) -> None:
        try:
            os.replace(src, dst)
        except OSError as exc:
            raise PortFileError(f"cannot rename {src} to {dst.name}: {describe(exc)}") from exc
        sync_folder(dst.parent)


def sync_folder(folder: Path) -> None:
    """fsync a folder so a rename survives a power cut (solar boxes lose power by design)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on folders; the rename itself is still atomic
    finally:
        os.close(fd)
