"""Day files of the data log, parsed once and kept in memory until the file grows or changes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from nutbridge.datalog import DataLogError, day_file, day_files, read_day
from nutbridge.nut.portfile import identity


class DayCache:
    """Parsed day files of one folder, each keyed by its identity (inode, mtime, size)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.hits = 0
        self.misses = 0
        self._rows: dict[str, tuple[tuple[int, int, int], list[list[str]]]] = {}

    def names(self) -> list[str]:
        """The day files, oldest first (only real log files: nothing else in the folder is ever served)."""
        try:
            return [p.name for p in day_files(self.folder)]
        except DataLogError:
            return []

    def version(self, names: list[str]) -> tuple[tuple[str, tuple[int, int, int] | None], ...]:
        """What changes when any of ``names`` changes: their identities (a stat each)."""
        out: list[tuple[str, tuple[int, int, int] | None]] = []
        for name in names:
            try:
                out.append((name, identity((self.folder / name).stat())))
            except OSError:
                out.append((name, None))
        return tuple(out)

    def rows(self, name: str) -> list[list[str]] | None:
        """A day file's rows, header first, or None when it does not exist or cannot be read."""
        path = self.folder / name
        try:
            key = identity(path.stat())
        except OSError:
            self._rows.pop(name, None)
            return None
        cached = self._rows.get(name)
        if cached is not None and cached[0] == key:
            self.hits += 1
            return cached[1]
        self.misses += 1
        try:
            rows = read_day(path)
        except DataLogError:
            return None
        self._rows[name] = (key, rows)
        return rows

    def newest_cell(self, column: str) -> str | None:
        """``column`` of today's newest row (the header itself in a file of no rows), or None."""
        rows = self.rows(self.today())
        if not rows or column not in rows[0]:
            return None
        return rows[-1][rows[0].index(column)]

    def today(self) -> str:
        """The name of today's file (the local date, as the data log names it)."""
        return day_file(self.folder, dt.date.today()).name
