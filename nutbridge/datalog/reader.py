"""The data log's reader: day files parsed once and kept in memory until the file grows or changes, with the rows
the writer still holds (``held``, given at construction) after them, so a reader never lags its flush window.

The JSON API, the dashboard's history and the election ask for columns by ``Column`` (``newest``,
``positions``, ``numbers``); the Solar Protocol v1 routes take the rows as v1's cells, header first (``rows``),
and look cells up by the file's own header text (``newest_cell``), as v1's PHP does.

A file that grew by appended rows (the data log only appends) is read from where the last read ended, not again
from its start. Rows are kept as tuples whose cells, other than the time, are shared with equal cells of the
same file (a day repeats a few thousand values): about 230 bytes a row where lists of fresh strings took 900,
which is what lets a day at the fastest poll interval (432,000 rows) stay in memory on a Pi.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from nutbridge.datalog.dayfiles import DataLogError, day_bytes
from nutbridge.datalog.format import DAY_FILE, HEADER, Column, Row, day_name, last_line, parse_rows
from nutbridge.datalog.format import positions as header_positions
from nutbridge.files import identity

MAX_FILES = 8  # day files kept parsed: today and the 7 days of the dashboard's plots
# A folder's listing is kept only once its last change is this old (ns): file systems stamp changes with a coarse
# clock (a kernel tick; 2 s on FAT), so a change in the same tick as the last one can leave the stamps as they were.
SETTLED_NS = 3_000_000_000


class Held(Protocol):
    """What holds rows before they reach the day files (the writer, ``writer.DataLog``)."""

    def held_rows(self, name: str) -> Sequence[list[str]]: ...

    def held_names(self) -> list[str]: ...


@dataclass(slots=True)
class DayFile:
    """One day file as last read: its identity then, its rows, and where its last complete line ends."""

    key: tuple[int, int, int]
    rows: list[Row]
    end: int  # bytes of the file's complete lines: the next read of a grown file starts here
    last_line: bytes  # the line that ends there: it must still be there for the file to have only grown
    cells: dict[str, str] = field(default_factory=dict)  # one copy of each cell value but the times
    tail: bool = False  # the last row is the unterminated line after ``end`` (read again when the file grows)

    def add(self, parsed: list[list[str]]) -> list[Row]:
        """``parsed`` as rows whose repeated cells share one string."""
        cells = self.cells
        return [(row[0], *(cells.setdefault(c, c) for c in row[1:])) for row in parsed]


class DayCache:
    """Parsed day files of one folder, each keyed by its identity (inode, mtime, size); ``held``: the writer
    whose rows not yet written come after the files' (None: the files alone, as another process wrote them)."""

    def __init__(self, folder: Path, held: Held | None = None, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.folder = folder
        self._held = held  # set once: whether today's unended line is a row depends on it (tail_is_row)
        self.clock = clock  # wall-clock ns, as file systems stamp changes
        self._prefix = os.path.join(folder, "")  # a day file's path is this and its name: no pathlib per request
        # the day files' names and the folder's stamps when they were listed (a listing of a settled folder only)
        self._listed: tuple[tuple[int, int, int, int], list[str]] | None = None
        self.hits = 0
        self.misses = 0
        # the most recently read files, oldest first: a month asked for once is read, not kept (~230 B a row)
        self._files: OrderedDict[str, DayFile] = OrderedDict()
        # parsed on demand, by file and column: the last row parsed, how many, and the numbers
        self._parsed: dict[tuple[str, int], tuple[Row, int, list[float | None]]] = {}

    def names(self) -> list[str]:
        """The day files, oldest first (only real log files: nothing else in the folder is ever served)."""
        names = self._listing()
        if self._held is not None:  # a day whose rows are all still held has no file yet
            names = sorted({*names, *self._held.held_names()})
        return names

    def _listing(self) -> list[str]:
        """The day files' names, listed again only when the folder has changed since: a file made, removed or
        renamed changes the folder's mtime and ctime (ctime cannot be set back, as ``touch`` or ``rsync -t``
        can set mtime). A listing is kept only when the folder's last change is SETTLED_NS older than the
        listing, so a change later than it cannot share its stamps."""
        try:
            st = os.stat(self.folder)
        except OSError:
            return []
        stamps = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
        listed = self._listed
        if listed is not None and listed[0] == stamps:
            return list(listed[1])
        started = self.clock()
        try:
            names = sorted(name for name in os.listdir(self.folder) if DAY_FILE.match(name))
        except OSError:
            return []
        settled = started - max(st.st_mtime_ns, st.st_ctime_ns) >= SETTLED_NS
        self._listed = (stamps, names) if settled else None
        return list(names)

    def version(self, names: list[str]) -> tuple[tuple[str, tuple[int, int, int] | None, int], ...]:
        """What changes when any of ``names`` changes: their identities (a stat each) and how many rows are
        still held for each."""
        out: list[tuple[str, tuple[int, int, int] | None, int]] = []
        held_names = set(self._held.held_names()) if self._held is not None else ()
        for name in names:
            held = len(self.pending(name)) if name in held_names else 0
            try:
                out.append((name, identity(os.stat(self._prefix + name)), held))
            except OSError:
                out.append((name, None, held))
        return tuple(out)

    def rows(self, name: str) -> list[Row] | None:
        """A day file's rows, header first, then the rows still to be written to it; None when there are none."""
        rows = self._file_rows(name)
        held = self.pending(name)
        if not held:
            return rows
        return [*(rows or [HEADER]), *held]

    def pending(self, name: str) -> Sequence[Row]:
        return () if self._held is None else self._held.held_rows(name)

    def _file_rows(self, name: str) -> list[Row] | None:
        try:
            key = identity(os.stat(self._prefix + name))
        except OSError:
            self._forget(name)
            return None
        cached = self._files.get(name)
        if cached is not None and cached.key == key:
            self.hits += 1
            self._files.move_to_end(name)
            return cached.rows
        self.misses += 1
        path = Path(self._prefix + name)
        try:
            day = self._grown(path, cached, key) if cached is not None else None
            if day is None:
                self._forget(name)
                day = read(path, key, tail=self.tail_is_row(name))
        except DataLogError:
            return None
        self._files[name] = day
        self._files.move_to_end(name)
        while len(self._files) > MAX_FILES:
            self._forget(next(iter(self._files)))
        return day.rows

    def _grown(self, path: Path, day: DayFile, key: tuple[int, int, int]) -> DayFile | None:
        """``day`` with the rows appended since it was read, or None when the file is another one or was
        changed, not only added to (then it is read whole): an append makes the file longer and leaves the
        line it read last where it was; an edit in place (an editor saving) rarely does both."""
        if key[0] != day.key[0] or key[2] <= day.key[2]:
            return None
        seen = len(day.last_line)
        data = day_bytes(path, day.end - seen)
        if not data.startswith(day.last_line):
            return None
        parsed, used, tail = parse_rows(data[seen:], tail=self.tail_is_row(path.name))
        if not used and not tail and not day.tail:
            day.key = key
            return day
        rows = day.rows[:-1] if day.tail else day.rows
        end = day.end + used
        return DayFile(key, [*rows, *day.add(parsed)], end, last_line(data, seen + used), day.cells, tail)

    def tail_is_row(self, name: str) -> bool:
        """Whether a last line without its newline is a row: in any file but the one this process's data log
        appends to (today's), where it is a write under way or torn by a crash (its next append ends it)."""
        return self._held is None or name != self.today()

    def _forget(self, name: str) -> None:
        if self._files.pop(name, None) is not None:
            for column in [k for k in list(self._parsed) if k[0] == name]:  # list(): one step, whatever threads do
                self._parsed.pop(column, None)

    def numbers(self, name: str, rows: Sequence[Row], column: int) -> list[float | None]:
        """Column ``column`` of ``rows[1:]`` (``rows(name)``'s answer) as numbers: Unix seconds for column 0 (the
        local ISO time), None where a cell is not a finite number. The file's rows are parsed once: rows that
        are the very ones parsed before (the same file, grown since) cost nothing; the rows still held, which
        the file's own replace at the next flush, are parsed at each call."""
        cached = self._parsed.get((name, column))
        done: list[float | None] = []
        if cached is not None:
            last, count, numbers = cached
            if 0 < count < len(rows) and rows[count] is last:  # the same rows, maybe more after them
                done = numbers
        parse = unix_seconds if column == 0 else finite_number
        numbers = done + [parse(row[column]) for row in rows[len(done) + 1 :]]
        day = self._files.get(name)
        kept = len(day.rows) if day is not None and len(day.rows) <= len(rows) else 0
        if kept > 1 and day is not None and rows[kept - 1] is day.rows[-1]:  # rows[:kept] are the file's
            parsed = numbers if kept == len(rows) else numbers[: kept - 1]
            self._parsed[name, column] = (rows[kept - 1], kept - 1, parsed)
        return numbers

    def newest(self, column: Column) -> str | None:
        """``column`` of today's newest row (its name itself in a file of no rows), or None."""
        return self.newest_cell(column)

    def newest_cell(self, name: str) -> str | None:
        """The cell under ``name`` in today's file's own header, of its newest row, as v1's routes look it up
        (any text: a name no column has is None)."""
        rows = self.rows(self.today())
        if not rows or name not in rows[0]:
            return None
        return rows[-1][rows[0].index(name)]

    def positions(self, rows: Sequence[Row], columns: Sequence[Column]) -> list[int] | None:
        """Where each of ``columns`` sits in ``rows`` (``rows(name)``'s answer): by the file's own header, so a
        file whose header was torn has none (None)."""
        return header_positions(rows[0], columns) if rows else None

    def name(self, day: dt.date) -> str:
        """The name of the file of ``day`` (local date)."""
        return day_name(day)

    def named(self, stem: str) -> list[Row] | None:
        """v1's ``day=tracerDataYYYY-MM-DD``: that file's rows if it is a day file of this log, else None (v1
        reads any path holding ``tracerData``; this, only a log file by its name)."""
        name = f"{stem}.csv"
        return self.rows(name) if name in self.names() else None

    def today(self) -> str:
        """The name of today's file (the local date, as the data log names it)."""
        return day_name(dt.date.today())


def read(path: Path, key: tuple[int, int, int], *, tail: bool = False) -> DayFile:
    """A day file read whole (DataLogError when it cannot be, or is too big for a day); ``tail``: as parse_rows."""
    data = day_bytes(path)
    parsed, end, has_tail = parse_rows(data, tail=tail)
    day = DayFile(key, [], end, last_line(data, end), tail=has_tail)
    day.rows = day.add(parsed)
    return day


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
