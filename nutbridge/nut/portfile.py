"""The dummy-ups port file on disk: replace it atomically when a poll changes its text, hide it on comms loss,
create it from its seed; and the hand-set settings read back from it. Its text is portfile_text.py's.

Facts from real NUT that shape this module (shared/reference/nut-and-enphase-monitor.md part 2,
nut-versions.md):
- dummy-ups in dummy-once mode re-reads the file only when its mtime moves to another whole second, so two
  writes must never share one: a write gets the next free second as its mtime, at most one second
  ahead of the clock; past that (sub-second polling) it is deferred.
- When the file disappears dummy-ups exits, so renaming it to ``<file>-nocomms`` makes upsd lose the driver.

With a seed (``nut/seed.py``) the file may live on tmpfs: it is created from the seed when missing, and
its hand-written lines are copied back to the seed when a person edits them.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from nutbridge.errors import PortFileError
from nutbridge.files import (
    TEMP_SUFFIX,
    create_temp,
    describe,
    glob_escape,
    identity,
    read_capped,
    remove_all,
    replace_atomically,
    sync_folder,
)
from nutbridge.nut.portfile_text import hand_lines, hand_set, merge
from nutbridge.nut.seed import MAX_SIZE

if TYPE_CHECKING:
    from nutbridge.nut.seed import Seed

log = logging.getLogger(__name__)


class Write(enum.Enum):
    """What ``PortFile.update`` did."""

    WRITTEN = "written"
    UNCHANGED = "unchanged"
    DEFERRED = "deferred"  # no free whole second for its mtime yet: dummy-once would miss it


class PortFile:
    """One port file and its ``-nocomms`` twin. Which of the two exists is the comms state NUT sees.

    A symlinked port file stays a link: its target is replaced. Every method may block on the disk;
    callers in the event loop run them in a thread, one at a time (a lock guards against overlap).
    With a ``seed``, a missing file is created from it, and hand-written lines edited here are copied to it.
    """

    def __init__(self, path: Path, seed: Seed | None = None) -> None:
        self.path = path
        self.seed = seed
        self.hidden_path = path.with_name(path.name + "-nocomms")
        self.hidden = False
        self.lock = threading.Lock()
        self._last_mtime = -1  # whole second of our last write (or of the file when found)
        self._warned: set[str] = set()
        self._cache: tuple[tuple[int, int, int], str] | None = None  # identity and text of our last write
        self._seeded: str | None = None  # a text of the file whose hand-written lines the seed holds

    def __str__(self) -> str:
        return str(self.path)

    def locate(self) -> None:
        """Find which name exists now, and clear temp files a killed write left behind.

        Neither name → error: the file must exist, so we run on the right machine; with a seed, the seed
        must exist instead, and the file is created from it.
        """
        try:
            if self.path.is_file():
                self.hidden = False
            elif self.hidden_path.is_file():
                self.hidden = True
            elif self.seed is not None:
                self._create_from_seed(self.seed)
            else:
                raise PortFileError(
                    f"port file {self.path} does not exist (nor {self.hidden_path.name}); create it first, "
                    f"e.g. with 'touch {self.path}', and point ups.conf's port= at it"
                )
            self._last_mtime = int(self.target.stat().st_mtime)
        except OSError as exc:
            raise PortFileError(f"cannot look at port file {self.path}: {exc.strerror}") from exc
        self.remove_stale_temps()

    def _create_from_seed(self, seed: Seed) -> None:
        """After a reboot emptied the tmpfs: the seed's lines, under the ``-nocomms`` name, since nothing is known
        of the device yet; the first good poll fills in the values and renames it, as after a comms loss."""
        text, mode, owner = seed.start()
        try:
            replace_atomically(self.hidden_path, text.encode("utf-8", "surrogateescape"), mode, owner=owner)
        except OSError as exc:
            raise PortFileError(f"cannot create {self.hidden_path} from its seed {seed}: {describe(exc)}") from exc
        self.hidden = True
        log.info("port file %s created from its seed %s; named so until the first good poll", self.hidden_path, seed)

    @property
    def current(self) -> Path:
        """The name the file has now."""
        return self.hidden_path if self.hidden else self.path

    @property
    def target(self) -> Path:
        """The file itself: the current name, or what it links to."""
        return Path(os.path.realpath(self.current))

    def remove_stale_temps(self) -> list[Path]:
        """Delete temp files of our own naming beside the file (a ``kill -9`` mid-write leaves one)."""
        names = {self.path.name, self.hidden_path.name, self.target.name}
        stale = [tmp for n in names for tmp in self.target.parent.glob(f".{glob_escape(n)}.*{TEMP_SUFFIX}")]
        if self.seed is not None:
            stale += self.seed.stale_temps()
        removed = remove_all(stale, "stale temp file")
        if removed:
            log.info("removed %d stale temp file(s) beside %s", len(removed), self.target)
        return removed

    def read(self) -> str:
        """The file's text; bytes that are not UTF-8 survive the round trip unchanged.

        The text of our own last write is kept with the file's identity (inode, mtime, size), so a poll
        that finds the file as we left it costs one stat; any edit by hand changes the identity.
        """
        path = self.current
        try:
            st = path.stat()
            cached = self._cache
            if cached is not None and cached[0] == identity(st):
                return cached[1]
            data = read_capped(path, MAX_SIZE)
        except OSError as exc:
            raise PortFileError(f"cannot read {path}: {describe(exc)}") from exc
        if data is None:
            raise PortFileError(f"{path} is over {MAX_SIZE // 1024} KiB; is it really a port file?")
        return data.decode("utf-8", "surrogateescape")

    def update(self, values: Mapping[str, str | None], marked: Iterable[str] = (), old: str | None = None) -> Write:
        """Merge ``values`` into the file and replace it if anything changed; ``old`` is its text, if just read.

        With a seed, a text we did not write ourselves (an edit, or the first poll) has its hand-written lines
        compared with the seed's, which is rewritten only when they differ: rare writes, never one per poll.
        """
        old = self.read() if old is None else old
        if self.seed is not None and old != self._seeded and self.seed.keep(hand_lines(old, values)):
            self._seeded = old
        new = merge(old, values, marked)
        if new == old:
            return Write.UNCHANGED
        mtime = self._next_mtime()
        if mtime is None:
            return Write.DEFERRED
        self._replace(new.encode("utf-8", "surrogateescape"), mtime)
        if self._seeded == old:
            self._seeded = new  # merge kept the hand-written lines as they were
        return Write.WRITTEN

    def _next_mtime(self) -> int | None:
        """A whole second no write of ours had, at most one ahead of the clock; None if there is none yet.

        dummy-once compares seconds for inequality, so when the file's mtime is ahead of the clock
        (a Pi without RTC that booted with an old time, NTP stepping back, a file copied in) the
        current second is as good as any: writes go on, with one warning.
        """
        now = time.time()
        if self._last_mtime > int(now) + 1:
            self._warn_once(
                "mtime-ahead",
                f"port file {self.target} has an mtime {self._last_mtime - int(now)} s ahead of the clock "
                "(clock stepped back?); writing with the current time",
            )
            return int(now)
        self._warned.discard("mtime-ahead")
        mtime = max(int(now), self._last_mtime + 1)
        return None if mtime > now + 1 else mtime

    def _replace(self, data: bytes, mtime: int) -> None:
        """Temp file beside the target, fsync, rename: a reader sees the old file or the new one, whole.

        The temp file has a fixed name (one writer per port file, under ``lock``): a leftover from a
        ``kill -9`` is simply replaced (``create_temp``), and the syscalls are few (each costs on an idle Pi).
        """
        target = self.target
        tmp = target.with_name(f".{target.name}.nutbridge{TEMP_SUFFIX}")
        try:
            st = os.stat(target)
            fd = create_temp(tmp, 0o600)
        except OSError as exc:
            raise PortFileError(f"cannot replace {target}: {describe(exc)}; the file is unchanged") from exc
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fchmod(fd, st.st_mode & 0o7777)
                self._keep_owner(fd, st, target)
                os.fsync(fd)
                os.utime(fd, (mtime, mtime))
                written = os.fstat(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise PortFileError(f"cannot replace {target}: {describe(exc)}; the file is unchanged") from exc
        self._last_mtime = mtime
        self._cache = (identity(written), data.decode("utf-8", "surrogateescape"))
        # No fsync of the folder here: after a power cut the previous file, whole, is as good as this one.

    def _keep_owner(self, fd: int, st: os.stat_result, target: Path) -> None:
        """Give the new file the old one's group and owner where allowed; warn once where not."""
        if st.st_gid != os.getegid():
            try:
                os.fchown(fd, -1, st.st_gid)  # allowed when we belong to that group
            except PermissionError:
                self._warn_once("group", f"cannot keep group {st.st_gid} of {target}: not a member of it")
        if st.st_uid != os.geteuid():
            try:
                os.fchown(fd, st.st_uid, -1)
            except PermissionError:
                self._warn_once("owner", f"cannot keep owner {st.st_uid} of {target} (running as uid {os.geteuid()})")

    def _warn_once(self, what: str, message: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning("%s", message)

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


class HandSettings:
    """The settings a port file sets by hand, read again only when the file changes (one stat per poll)."""

    def __init__(self, portfile: PortFile, names: Iterable[str]) -> None:
        self.portfile = portfile
        self.names = frozenset(names)
        self._key: tuple[int, int, int] | None = None
        self._values: dict[str, str] = {}

    def get(self) -> Mapping[str, str]:
        """The hand-set values; the last ones known if the file cannot be read now."""
        try:
            key = identity(self.portfile.current.stat())
            if key != self._key:
                self._values, self._key = hand_set(self.portfile.read(), self.names), key
        except (OSError, PortFileError):
            pass  # the port-file sink reports an unreadable file; keep what we knew
        return self._values
