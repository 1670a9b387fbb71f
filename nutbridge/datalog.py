"""The data log: one CSV per local day, in Solar Protocol v1's format, with correct values.

v1 clients (the Solar Protocol front end, peers, runner.py) parse these files as its own logger writes
them (shared/reference/solar-protocol.md §1a): ``tracerDataYYYY-MM-DD.csv``, the exact header below, a naive
local timestamp with microseconds, the battery percentage as a 0-1 fraction. Unlike v1, the load columns
come from the load registers, the 32-bit powers are whole (the ``… power L`` column holds the watts and
``… power H`` 0, so a client that reads L gets the true power), and rows are appended, never rewritten:
a crash can tear the last line at worst, and a torn line is ignored when read.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

from nutbridge.errors import NutbridgeError
from nutbridge.files import describe, remove_all
from nutbridge.model import Reading
from nutbridge.sinks import Wants
from nutbridge.snapshot import Comms, Snapshot

log = logging.getLogger(__name__)

HEADER: tuple[str, ...] = (
    "datetime",
    "PV voltage",
    "PV current",
    "PV power L",
    "PV power H",
    "battery voltage",
    "battery current",
    "battery power L",
    "battery power H",
    "load voltage",
    "load current",
    "load power",
    "battery percentage",
)
DAY_FILE = re.compile(r"^tracerData(\d{4}-\d{2}-\d{2})\.csv$")
MAX_DAY_FILE = 32 * 1024 * 1024  # a day at one row a second is under 10 MB
CLOCK_FLOOR = dt.datetime(2024, 1, 1).timestamp()  # a reading stamped before this comes from a clock never set
MAX_HELD = 20_000  # rows held while the files cannot be written: over a day at 5 s polls, some 4 MB
RETRY = 30.0  # seconds between attempts to write held rows after a failure


class DataLogError(NutbridgeError):
    """The data log could not be written or read; rows already written are left as they are."""


def day_file(folder: Path, day: dt.date) -> Path:
    """Where the rows of ``day`` (local date) go."""
    return folder / f"tracerData{day.isoformat()}.csv"


def v1_cell(value: float | None) -> str:
    """A value as v1 wrote it (a Python float repr, 2 decimals), or empty when not measured."""
    return "" if value is None else repr(round(float(value), 2))


def high_word(value: float | None) -> str:
    """The ``… power H`` column: 0 beside a whole value in L (v1 split 32-bit powers in two)."""
    return "" if value is None else "0.0"


def battery_power(r: Reading) -> float | None:
    """Net battery power, W (+ charging), from the net current and the voltage."""
    if r.battery_current is None or r.battery_voltage is None:
        return None
    return r.battery_current * r.battery_voltage


def row(r: Reading) -> list[str]:
    """One CSV row for a reading: the columns a source cannot fill are empty."""
    stamp = dt.datetime.fromtimestamp(r.time).isoformat(sep=" ", timespec="microseconds")
    charge = None if r.battery_charge is None else r.battery_charge / 100
    power = battery_power(r)
    return [
        stamp,
        v1_cell(r.pv_voltage),
        v1_cell(r.pv_current),
        v1_cell(r.pv_power),
        high_word(r.pv_power),
        v1_cell(r.battery_voltage),
        v1_cell(r.battery_current),
        v1_cell(power),
        high_word(power),
        v1_cell(r.load_voltage),
        v1_cell(r.load_current),
        v1_cell(r.load_power),
        v1_cell(charge),
    ]


def csv_line(cells: Sequence[str]) -> str:
    """Cells joined as v1 wrote them: commas, no quoting needed (no cell holds a comma)."""
    return ",".join(cells) + "\n"


def read_day(path: Path) -> list[list[str]]:
    """The rows of a day file, header first; a torn or malformed line (a crash mid-append) is skipped."""
    return parse_rows(day_bytes(path))[0]


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


def parse_rows(data: bytes, *, tail: bool = False) -> tuple[list[list[str]], int, bool]:
    """The rows in ``data`` (a day file's bytes from the start of a line), how many bytes their complete lines
    take, and whether the last row is the unterminated line after them. A malformed line is no row. What
    follows the last newline is a row only with ``tail`` and when it holds every column, as PHP's fgetcsv reads
    a file whose writer left out the last newline; without ``tail`` (the file this data log appends to) it is
    a line still being written, or torn by a crash."""
    end = data.rfind(b"\n") + 1
    lines = data[:end].decode("utf-8", "replace").split("\n")
    rows = [cells for cells in csv.reader(line for line in lines if line) if len(cells) == len(HEADER)]
    if tail and end < len(data):
        last = next(csv.reader([data[end:].decode("utf-8", "replace").rstrip("\r")]), [])
        if len(last) == len(HEADER):
            return [*rows, last], end, True
    return rows, end, False


def last_line(data: bytes, end: int) -> bytes:
    """The line of ``data`` that ends at ``end`` (just after its newline); empty when ``end`` is 0."""
    return data[data.rfind(b"\n", 0, end - 1) + 1 : end] if end else b""


def file_day(path: Path) -> dt.date:
    """The date in a day file's name."""
    return dt.date.fromisoformat(path.name.removeprefix("tracerData").removesuffix(".csv"))


def day_files(folder: Path) -> list[Path]:
    """The day files in ``folder``, oldest first (by the date in the name)."""
    try:
        names = sorted(p.name for p in folder.iterdir() if DAY_FILE.match(p.name))
    except OSError as exc:
        raise DataLogError(f"cannot list {folder}: {describe(exc)}") from exc
    return [folder / name for name in names]


class DataLog:
    """The data-log sink: appends one row per good poll to the day's file; keeps ``retention_days`` days.

    File work runs in a worker thread. Rows go to a file opened with O_APPEND, one ``write`` and an fsync at a
    time: a reader never sees a file rewritten, and a crash can only tear the newest line. With
    ``flush_interval`` the rows are held in memory and appended together once the oldest has waited that long,
    before the first row of a new day, and at a stop (the runner flushes it, ``sinks.Buffering``): one write to
    the SD card per window instead of one per poll. A crash loses at most the window; the daemon's own readers
    (the API, the v1 routes, the election: ``daycache.py``) add the held rows (``held_rows``) after the
    files', so they never lag it; anything else reading the files sees a row once it is flushed.
    """

    wants: ClassVar[Wants] = Wants.EVERY  # a row per poll

    def __init__(
        self,
        folder: Path,
        *,
        retention_days: int = 0,
        flush_interval: float = 0.0,
        today: Callable[[float], dt.date] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = folder
        self.retention_days = retention_days  # 0 = keep every day
        self.flush_interval = flush_interval  # 0 = every row at once
        self.today = today or (lambda t: dt.datetime.fromtimestamp(t).date())
        self.clock = clock
        self._checked: Path | None = None  # the day file whose end we know to be whole
        self._pruned: dt.date | None = None
        self._held: list[tuple[dt.date, str]] = []  # rows not written yet: (day, line)
        self._held_since = 0.0  # clock time the oldest held row came in
        self._retry_at = 0.0  # after a failed flush, when to try again
        self.dropped = 0  # held rows given up on (a disk failing for longer than MAX_HELD rows)
        self._cells: dict[str, list[str]] = {}  # held rows as cells, as readers last asked for them
        self._newest: float | None = None  # the newest reading time logged (or held)
        self._looked = False  # whether the files were read for it
        self._skipping = False
        self.skipped = 0  # readings left out: stamped by a clock not set, or stepped back

    def __str__(self) -> str:
        return f"data log {self.folder}"

    async def update(self, snapshot: Snapshot) -> None:
        """Append (or hold) the snapshot's reading; failed polls write nothing, but may end a window."""
        if snapshot.comms is Comms.OK and snapshot.reading is not None and await self.in_order(snapshot.reading.time):
            if not self.flush_interval:
                await asyncio.to_thread(self.append, snapshot.reading)
                return
            day = self.today(snapshot.reading.time)
            new_day = bool(self._held) and self._held[-1][0] != day
            self.hold(day, csv_line(row(snapshot.reading)))
            if new_day:
                await self.flush()  # yesterday's file is whole from midnight on, not a window later
                return
        due = self.due()
        if due is not None and due <= 0:
            await self.flush()

    async def in_order(self, t: float) -> bool:
        """Whether a reading stamped ``t`` may be logged: not before CLOCK_FLOOR (a clock that was never set),
        not before the newest row logged (a clock stepped back, a Pi that booted with an old time). Such rows
        are left out, with one warning, until the clock is past the log's newest row again: a day file only
        ever grows, in time order, and no row lands in a 1970 file."""
        if self._newest is None and not self._looked:
            self._looked = True
            self._newest = await asyncio.to_thread(newest_time, self.folder)
        problem = None
        if t < CLOCK_FLOOR:
            problem = f"the clock reads {stamp(t)}: not set yet? rows are left out of the log until it is"
        elif self._newest is not None and t < self._newest:
            problem = (f"the clock ({stamp(t)}) is behind the log's newest row ({stamp(self._newest)}): stepped "
                       "back? rows are left out until it is past it")  # fmt: skip
        if problem is not None:
            self.skipped += 1
            if not self._skipping:
                self._skipping = True
                log.warning("%s: %s", self, problem)
            return False
        if self._skipping:
            self._skipping = False
            log.info("%s: the clock is in order again; %d row(s) were left out", self, self.skipped)
        self._newest = t
        return True

    def hold(self, day: dt.date, line: str) -> None:
        """Keep one row for the next flush; past MAX_HELD rows (a disk failing for long) the oldest are dropped."""
        if not self._held:
            self._held_since = self.clock()
        self._held.append((day, line))
        if len(self._held) > MAX_HELD:
            del self._held[0]
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("%s: %d row(s) dropped so far: the files cannot be written", self, self.dropped)

    def held_rows(self, name: str) -> list[list[str]]:
        """The cells of the rows held for the day file ``name``, oldest first: readers of the files add them,
        so no answer lags the flush window. Each row's cells are made once (a reader's cache knows them by
        identity); this may run in a reader's thread while the loop holds more rows."""
        known, self._cells = self._cells, {}
        names: dict[dt.date, str] = {}
        out = []
        for day, line in list(self._held):
            cells = known.get(line) or line.rstrip("\n").split(",")  # v1's rows hold no quoted commas
            self._cells[line] = cells  # every held row's, whichever file was asked for
            if names.setdefault(day, day_file(self.folder, day).name) == name:
                out.append(cells)
        return out

    def held_names(self) -> list[str]:
        """The day files that rows are held for."""
        return sorted({day_file(self.folder, day).name for day, _ in list(self._held)})

    def due(self) -> float | None:
        """Seconds until the held rows must be written (0 or less: now); None when none are held."""
        if not self._held:
            return None
        return max(self._held_since + self.flush_interval, self._retry_at) - self.clock()

    async def flush(self) -> None:
        """Write every held row, each into the file of its own date; rows a failure left unwritten are kept."""
        if not self._held:
            return
        rows, self._held = self._held, []
        since = self._held_since
        written, error = await asyncio.to_thread(self.write, rows)
        if error is None:
            return
        self._held[:0] = rows[written:]  # rows held meanwhile (none: the runner waits for us) stay after them
        self._held_since = since
        self._retry_at = self.clock() + min(self.flush_interval, RETRY)
        raise error

    def append(self, reading: Reading) -> Path:
        """Append one row (the header first in a new file) at once; returns the day file."""
        day = self.today(reading.time)
        _, error = self.write([(day, csv_line(row(reading)))])
        if error is not None:
            raise error
        return day_file(self.folder, day)

    def write(self, rows: Sequence[tuple[dt.date, str]]) -> tuple[int, DataLogError | None]:
        """Append ``rows`` (day, line), oldest first: one write and one fsync per day file.

        Returns how many rows, from the first, are in the files, and the error that stopped the rest.
        """
        done = 0
        for day, lines in itertools.groupby(rows, key=lambda r: r[0]):
            texts = [line for _, line in lines]
            written, error = self._append_lines(day, texts)
            done += written
            if error is not None:
                return done, error
        return done, None

    def _append_lines(self, day: dt.date, lines: list[str]) -> tuple[int, DataLogError | None]:
        """One day's rows in one ``write`` (the header first in a new file), then fsync."""
        path = day_file(self.folder, day)
        data = "".join(lines).encode()
        sent = prefix = 0
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                if os.fstat(fd).st_size == 0:
                    data = csv_line(HEADER).encode() + data
                elif self._checked != path and not ends_with_newline(path):
                    data = b"\n" + data  # end a line torn by a crash, so this row starts a line of its own
                prefix = len(data) - sum(len(line) for line in lines)  # all ASCII: characters are bytes
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                    sent = len(data) - len(view)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._checked = None
            whole = whole_lines(lines, sent - prefix) if sent else 0
            return whole, DataLogError(f"cannot append to {path}: {describe(exc)}; earlier rows are kept")
        self._checked = path
        if self._pruned != day:
            self._pruned = day
            self.prune(day)
        return len(lines), None

    def prune(self, today: dt.date) -> list[Path]:
        """Delete day files older than ``retention_days`` before ``today``."""
        if not self.retention_days:
            return []
        oldest = today - dt.timedelta(days=self.retention_days - 1)
        old = [p for p in day_files(self.folder) if file_day(p) < oldest]
        removed = remove_all(old, "old day file")
        if removed:
            log.info("data log: removed %d day file(s) older than %d days", len(removed), self.retention_days)
        return removed


def newest_time(folder: Path) -> float | None:
    """The time of the newest row of the newest day file, or None (no file, no readable row)."""
    try:
        files = day_files(folder)
        rows = read_day(files[-1]) if files else []
    except DataLogError:
        return None
    for cells in reversed(rows[1:]):
        try:
            return dt.datetime.fromisoformat(cells[0]).timestamp()
        except ValueError:
            continue
    return None


def stamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t).isoformat(sep=" ", timespec="seconds")


def whole_lines(lines: Sequence[str], sent: int) -> int:
    """How many of ``lines`` fit whole in the first ``sent`` bytes written."""
    count = 0
    for line in lines:
        sent -= len(line)
        if sent < 0:
            break
        count += 1
    return count


def ends_with_newline(path: Path) -> bool:
    """True when the file is empty or its last byte is a newline."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
