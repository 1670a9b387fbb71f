"""The data log's writer, a sink: one row per good poll appended to the day's file, or held for the flush window.

Rows are appended, never rewritten: a crash can tear the last line at worst; a torn line is ignored when read,
and the next append ends it first so its row starts a line of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

from nutbridge.datalog import retention
from nutbridge.datalog.dayfiles import DataLogError, newest_time
from nutbridge.datalog.format import HEADER, csv_line, day_file, day_name, encode, split_line
from nutbridge.files import describe
from nutbridge.model import Reading
from nutbridge.sinks import Wants
from nutbridge.snapshot import Comms, Snapshot

log = logging.getLogger(__name__)

CLOCK_FLOOR = dt.datetime(2024, 1, 1).timestamp()  # a reading stamped before this comes from a clock never set
MAX_HELD = 20_000  # rows held while the files cannot be written: over a day at 5 s polls, some 4 MB
RETRY = 30.0  # seconds between attempts to write held rows after a failure


class DataLog:
    """The data-log sink: appends one row per good poll to the day's file; keeps ``retention_days`` days.

    File work runs in a worker thread. Rows go to a file opened with O_APPEND, one ``write`` and an fsync at a
    time: a reader never sees a file rewritten, and a crash can only tear the newest line. With
    ``flush_interval`` the rows are held in memory and appended together once the oldest has waited that long,
    before the first row of a new day, and at a stop (the runner flushes it, ``sinks.Buffering``): one write to
    the SD card per window instead of one per poll. A crash loses at most the window; the daemon's own readers
    (the API, the v1 routes, the election: ``reader.DayCache``) add the held rows (``held_rows``) after the
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
            self.hold(day, csv_line(encode(snapshot.reading)))
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
        for day, text in list(self._held):
            cells = known.get(text) or split_line(text)
            self._cells[text] = cells  # every held row's, whichever file was asked for
            if names.setdefault(day, day_name(day)) == name:
                out.append(cells)
        return out

    def held_names(self) -> list[str]:
        """The day files that rows are held for."""
        return sorted({day_name(day) for day, _ in list(self._held)})

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
        _, error = self.write([(day, csv_line(encode(reading)))])
        if error is not None:
            raise error
        return day_file(self.folder, day)

    def write(self, rows: Sequence[tuple[dt.date, str]]) -> tuple[int, DataLogError | None]:
        """Append ``rows`` (day, line), oldest first: one write and one fsync per day file.

        Returns how many rows, from the first, are in the files, and the error that stopped the rest.
        """
        done = 0
        for day, lines in itertools.groupby(rows, key=lambda r: r[0]):
            texts = [text for _, text in lines]
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
                prefix = len(data) - sum(len(text) for text in lines)  # all ASCII: characters are bytes
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
        """Delete day files older than ``retention_days`` before ``today`` (retention.py)."""
        return retention.prune(self.folder, today, self.retention_days)


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
