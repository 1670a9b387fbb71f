"""A folder's day files on disk: which there are, their bytes (bounded), their rows, the newest row's time.

The writer, the reader and retention share these; ``DataLogError`` is what any of them raises when the files
cannot be listed, read or written.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from nutbridge.datalog.format import DAY_FILE, parse_rows
from nutbridge.errors import NutbridgeError
from nutbridge.files import describe

MAX_DAY_FILE = 32 * 1024 * 1024  # a day at one row a second is under 10 MB


class DataLogError(NutbridgeError):
    """The data log could not be written or read; rows already written are left as they are."""


def day_files(folder: Path) -> list[Path]:
    """The day files in ``folder``, oldest first (by the date in the name)."""
    try:
        names = sorted(p.name for p in folder.iterdir() if DAY_FILE.match(p.name))
    except OSError as exc:
        raise DataLogError(f"cannot list {folder}: {describe(exc)}") from exc
    return [folder / name for name in names]


def day_bytes(path: Path, start: int = 0) -> bytes:
    """A day file's bytes from ``start`` on; DataLogError when it cannot be read or is too big for a day."""
    try:
        with path.open("rb") as f:
            f.seek(start)
            data = f.read(MAX_DAY_FILE - start + 1)
    except OSError as exc:
        raise DataLogError(f"cannot read {path}: {describe(exc)}") from exc
    if start + len(data) > MAX_DAY_FILE:
        raise DataLogError(f"{path} is over {MAX_DAY_FILE // 2**20} MiB; not a day of readings")
    return data


def read_day(path: Path) -> list[list[str]]:
    """The rows of a day file, header first; a torn or malformed line (a crash mid-append) is skipped."""
    return parse_rows(day_bytes(path))[0]


def newest_time(folder: Path) -> float | None:
    """The time of the newest row of the newest day file, or None (no file, no readable row)."""
    try:
        files = day_files(folder)
        rows = read_day(files[-1]) if files else []
    except DataLogError:
        return None
    for cells in reversed(rows[1:]):
        try:
            return dt.datetime.fromisoformat(cells[0]).timestamp()  # Column.DATETIME, the first
        except ValueError:
            continue
    return None
