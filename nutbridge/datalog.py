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
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from nutbridge.errors import NutbridgeError
from nutbridge.files import describe, read_capped, remove_all
from nutbridge.model import Reading
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


class DataLogError(NutbridgeError):
    """The data log could not be written or read; rows already written are left as they are."""


def day_file(folder: Path, day: dt.date) -> Path:
    """Where the rows of ``day`` (local date) go."""
    return folder / f"tracerData{day.isoformat()}.csv"


def number(value: float | None) -> str:
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
        number(r.pv_voltage),
        number(r.pv_current),
        number(r.pv_power),
        high_word(r.pv_power),
        number(r.battery_voltage),
        number(r.battery_current),
        number(power),
        high_word(power),
        number(r.load_voltage),
        number(r.load_current),
        number(r.load_power),
        number(charge),
    ]


def csv_line(cells: Sequence[str]) -> str:
    """Cells joined as v1 wrote them: commas, no quoting needed (no cell holds a comma)."""
    return ",".join(cells) + "\n"


def read_day(path: Path) -> list[list[str]]:
    """The rows of a day file, header first; a torn or malformed line (a crash mid-append) is skipped."""
    try:
        data = read_capped(path, MAX_DAY_FILE)
    except OSError as exc:
        raise DataLogError(f"cannot read {path}: {describe(exc)}") from exc
    if data is None:
        raise DataLogError(f"{path} is over {MAX_DAY_FILE // 2**20} MiB; not a day of readings")
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] != "":
        lines[-1] = ""  # no final newline: the last line is torn
    return [cells for cells in csv.reader(line for line in lines if line) if len(cells) == len(HEADER)]


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

    File work runs in a worker thread. Each row is one ``write`` to a file opened with O_APPEND, then fsync:
    a reader never sees a file rewritten, and a crash can only tear the newest line.
    """

    def __init__(
        self, folder: Path, *, retention_days: int = 0, today: Callable[[float], dt.date] | None = None
    ) -> None:
        self.folder = folder
        self.retention_days = retention_days  # 0 = keep every day
        self.today = today or (lambda t: dt.datetime.fromtimestamp(t).date())
        self._checked: Path | None = None  # the day file whose end we know to be whole
        self._pruned: dt.date | None = None

    def __str__(self) -> str:
        return f"data log {self.folder}"

    async def update(self, snapshot: Snapshot) -> None:
        """Append the snapshot's reading; failed polls write nothing."""
        if snapshot.comms is not Comms.OK or snapshot.reading is None:
            return
        await asyncio.to_thread(self.append, snapshot.reading)

    def append(self, reading: Reading) -> Path:
        """Append one row (the header first in a new file); returns the day file."""
        day = self.today(reading.time)
        path = day_file(self.folder, day)
        line = csv_line(row(reading))
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size == 0:
                    line = csv_line(HEADER) + line
                elif self._checked != path and not ends_with_newline(path):
                    line = "\n" + line  # end a line torn by a crash, so this row starts a line of its own
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._checked = None
            raise DataLogError(f"cannot append to {path}: {describe(exc)}; earlier rows are kept") from exc
        self._checked = path
        if self._pruned != day:
            self._pruned = day
            self.prune(day)
        return path

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


def ends_with_newline(path: Path) -> bool:
    """True when the file is empty or its last byte is a newline."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
