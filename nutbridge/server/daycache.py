"""Day files of the data log, parsed once and kept in memory until the file grows or changes, with the rows the
data log still holds (``held``) after them, so a reader never lags its flush window."""

from __future__ import annotations

import datetime as dt
import math
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from nutbridge.datalog import HEADER, DataLogError, day_file, day_files, read_day
from nutbridge.nut.portfile import identity

MAX_FILES = 8  # day files kept parsed: today and the 7 days of the dashboard's plots


class Held(Protocol):
    """What holds rows before they reach the day files (datalog.DataLog)."""

    def held_rows(self, name: str) -> Sequence[list[str]]: ...

    def held_names(self) -> list[str]: ...


class DayCache:
    """Parsed day files of one folder, each keyed by its identity (inode, mtime, size)."""

    def __init__(self, folder: Path, held: Held | None = None) -> None:
        self.folder = folder
        self.held = held  # the rows not written yet (the data log's), oldest first
        self.hits = 0
        self.misses = 0
        # the most recently read files, oldest first: a month asked for once is read, not kept (about 1 KB a row)
        self._rows: OrderedDict[str, tuple[tuple[int, int, int], list[list[str]]]] = OrderedDict()
        # parsed on demand, by file and column: the last row parsed, how many, and the numbers
        self._parsed: dict[tuple[str, int], tuple[list[str], int, list[float | None]]] = {}

    def names(self) -> list[str]:
        """The day files, oldest first (only real log files: nothing else in the folder is ever served)."""
        try:
            names = [p.name for p in day_files(self.folder)]
        except DataLogError:
            names = []
        if self.held is not None:  # a day whose rows are all still held has no file yet
            names = sorted({*names, *self.held.held_names()})
        return names

    def version(self, names: list[str]) -> tuple[tuple[str, tuple[int, int, int] | None, int], ...]:
        """What changes when any of ``names`` changes: their identities (a stat each) and how many rows are
        still held for each."""
        out: list[tuple[str, tuple[int, int, int] | None, int]] = []
        for name in names:
            held = len(self.pending(name))
            try:
                out.append((name, identity((self.folder / name).stat()), held))
            except OSError:
                out.append((name, None, held))
        return tuple(out)

    def rows(self, name: str) -> list[list[str]] | None:
        """A day file's rows, header first, then the rows still to be written to it; None when there are none."""
        rows = self._file_rows(name)
        held = self.pending(name)
        if not held:
            return rows
        return [*(rows or [list(HEADER)]), *held]

    def pending(self, name: str) -> Sequence[list[str]]:
        return () if self.held is None else self.held.held_rows(name)

    def _file_rows(self, name: str) -> list[list[str]] | None:
        path = self.folder / name
        try:
            key = identity(path.stat())
        except OSError:
            self._rows.pop(name, None)
            return None
        cached = self._rows.get(name)
        if cached is not None and cached[0] == key:
            self.hits += 1
            self._rows.move_to_end(name)
            return cached[1]
        self.misses += 1
        try:
            rows = read_day(path)
        except DataLogError:
            return None
        self._rows[name] = (key, rows)
        self._rows.move_to_end(name)
        while len(self._rows) > MAX_FILES:
            gone, _ = self._rows.popitem(last=False)
            for column in [k for k in self._parsed if k[0] == gone]:
                del self._parsed[column]
        return rows

    def numbers(self, name: str, rows: list[list[str]], column: int) -> list[float | None]:
        """Column ``column`` of ``rows[1:]`` (``rows(name)``'s answer) as numbers: Unix seconds for column 0 (the
        local ISO time), None where a cell is not a finite number. Each row is parsed once: rows that are the
        very ones parsed before (the same file, rows held since) cost nothing, only new ones are parsed."""
        cached = self._parsed.get((name, column))
        done: list[float | None] = []
        if cached is not None:
            last, count, numbers = cached
            if 0 < count < len(rows) and rows[count] is last:  # the same rows, maybe more after them
                done = numbers
        parse = unix_seconds if column == 0 else finite_number
        numbers = done + [parse(row[column]) for row in rows[len(done) + 1 :]]
        if len(rows) > 1:
            self._parsed[name, column] = (rows[-1], len(rows) - 1, numbers)
        return numbers

    def newest_cell(self, column: str) -> str | None:
        """``column`` of today's newest row (the header itself in a file of no rows), or None."""
        rows = self.rows(self.today())
        if not rows or column not in rows[0]:
            return None
        return rows[-1][rows[0].index(column)]

    def today(self) -> str:
        """The name of today's file (the local date, as the data log names it)."""
        return day_file(self.folder, dt.date.today()).name


def finite_number(cell: str) -> float | None:
    """A data log cell as a number; empty, unreadable or not finite is None (JSON null)."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def unix_seconds(stamp: str) -> float | None:
    """A data log time (local, ISO 8601) as Unix seconds; None when it is not one."""
    try:
        return dt.datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None
