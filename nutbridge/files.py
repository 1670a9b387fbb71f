"""Small file helpers the port file, its seed, the data log and its day cache share: clear reasons, temp files,
removals, folder fsync, a file's identity."""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"  # a temp file's name ends so, so a leftover is found by its name


def describe(exc: OSError) -> str:
    """A short, clear reason for a failed file operation."""
    if exc.errno == errno.ENOSPC:
        return "disk full"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "folder not writable"
    return exc.strerror or str(exc)


def read_capped(path: Path, limit: int) -> bytes | None:
    """The file's bytes, or None when it is over ``limit`` (what it is, is then not worth reading)."""
    with path.open("rb") as f:
        data = f.read(limit + 1)
    return None if len(data) > limit else data


def replace_atomically(path: Path, data: bytes, mode: int = 0o644, owner: tuple[int, int] | None = None) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it and rename it over ``path``: a reader sees
    the old file or the new one, never part of one. OSError leaves ``path`` as it was.

    With ``owner`` (uid, gid) the new file gets that owner and exactly ``mode`` (not masked by the umask)
    before it takes ``path``'s place, so a reader never sees it with the wrong owner.
    """
    tmp = path.with_name(f".{path.name}.nutbridge.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = create_temp(tmp, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if owner is not None:
                os.fchown(fd, *owner)
                os.fchmod(fd, mode)  # after the chown, which may clear set-id bits
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def create_temp(tmp: Path, mode: int) -> int:
    """Open ``tmp`` for writing as a new, empty regular file of ours (``mode``, masked by the umask).

    Whatever has that name is removed first: a ``kill -9`` leftover, or a FIFO, hard link or symlink planted by
    someone who can write the folder (root writes in folders NUT's user can write), which an open without
    O_EXCL would hang on, or write, chown and chmod the file it leads to. A name that reappears before the
    open is a race lost to another writer: an OSError, never a write through it.
    """
    tmp.unlink(missing_ok=True)
    try:
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, f"temp file {tmp.name} created anew by another writer", str(tmp)) from None


def remove_all(paths: Iterable[Path], what: str) -> list[Path]:
    """Delete ``paths``; one that cannot be deleted is logged (as ``what``) and left. Returns the removed."""
    removed = []
    for path in paths:
        try:
            path.unlink()
        except OSError as exc:
            log.warning("cannot remove %s %s: %s", what, path, describe(exc))
        else:
            removed.append(path)
    return removed


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


def identity(st: os.stat_result) -> tuple[int, int, int]:
    """What changes whenever a file is replaced or edited: inode, mtime in ns, size."""
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def glob_escape(name: str) -> str:
    """``name`` with glob characters taken literally."""
    return re.sub(r"([*?\[])", r"[\1]", name)
