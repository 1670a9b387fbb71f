"""The data log's format: Solar Protocol v1's day files, their columns, a Reading as a row, rows parsed back.

v1 clients (the Solar Protocol front end, peers, runner.py) parse these files as its own logger writes
them (shared/reference/solar-protocol.md §1a): ``tracerDataYYYY-MM-DD.csv``, the exact header of ``Column``,
a naive local timestamp with microseconds, the battery percentage as a 0-1 fraction. Unlike v1, the load
columns come from the load registers, and the 32-bit powers are whole (the ``… power L`` column holds the
watts and ``… power H`` 0, so a client that reads L gets the true power). Nothing here does I/O.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path

from nutbridge.model import Reading


class Column(StrEnum):
    """The day files' columns in file order; each one's value is its name in v1's header."""

    DATETIME = "datetime"
    PV_VOLTAGE = "PV voltage"
    PV_CURRENT = "PV current"
    PV_POWER_L = "PV power L"
    PV_POWER_H = "PV power H"
    BATTERY_VOLTAGE = "battery voltage"
    BATTERY_CURRENT = "battery current"
    BATTERY_POWER_L = "battery power L"
    BATTERY_POWER_H = "battery power H"
    LOAD_VOLTAGE = "load voltage"
    LOAD_CURRENT = "load current"
    LOAD_POWER = "load power"
    BATTERY_PERCENTAGE = "battery percentage"


HEADER: tuple[str, ...] = tuple(c.value for c in Column)  # v1's header row, as plain text
FIELDS: tuple[Column, ...] = tuple(Column)[1:]  # the measured columns: every one but the time
DAY_PREFIX = "tracerData"  # v1's day files are tracerDataYYYY-MM-DD.csv; its routes look for this in a name
DAY_FILE = re.compile(rf"^{DAY_PREFIX}(\d{{4}}-\d{{2}}-\d{{2}})\.csv$")
Row = Sequence[str]


def day_name(day: dt.date) -> str:
    """The name of the file of ``day`` (local date)."""
    return f"{DAY_PREFIX}{day.isoformat()}.csv"


def day_file(folder: Path, day: dt.date) -> Path:
    """Where the rows of ``day`` (local date) go."""
    return folder / day_name(day)


def file_day(path: Path) -> dt.date:
    """The date in a day file's name."""
    return dt.date.fromisoformat(path.name.removeprefix(DAY_PREFIX).removesuffix(".csv"))


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


def local_stamp(r: Reading) -> str:
    """The ``datetime`` cell: the reading's naive local time with microseconds (str() drops them on the second)."""
    return dt.datetime.fromtimestamp(r.time).isoformat(sep=" ", timespec="microseconds")


def charge_fraction(r: Reading) -> str:
    """The ``battery percentage`` cell: a 0-1 fraction, as runner.py expects."""
    return v1_cell(None if r.battery_charge is None else r.battery_charge / 100)


# Each column's cell from a Reading; the columns a source cannot fill are empty.
CELLS: dict[Column, Callable[[Reading], str]] = {
    Column.DATETIME: local_stamp,
    Column.PV_VOLTAGE: lambda r: v1_cell(r.pv_voltage),
    Column.PV_CURRENT: lambda r: v1_cell(r.pv_current),
    Column.PV_POWER_L: lambda r: v1_cell(r.pv_power),
    Column.PV_POWER_H: lambda r: high_word(r.pv_power),
    Column.BATTERY_VOLTAGE: lambda r: v1_cell(r.battery_voltage),
    Column.BATTERY_CURRENT: lambda r: v1_cell(r.battery_current),
    Column.BATTERY_POWER_L: lambda r: v1_cell(battery_power(r)),
    Column.BATTERY_POWER_H: lambda r: high_word(battery_power(r)),
    Column.LOAD_VOLTAGE: lambda r: v1_cell(r.load_voltage),
    Column.LOAD_CURRENT: lambda r: v1_cell(r.load_current),
    Column.LOAD_POWER: lambda r: v1_cell(r.load_power),
    Column.BATTERY_PERCENTAGE: charge_fraction,
}


IN_ORDER = tuple(CELLS[column] for column in Column)  # once: walking an Enum costs more than the cells


def encode(r: Reading) -> list[str]:
    """One row's cells for a reading, in file order."""
    return [cell(r) for cell in IN_ORDER]


def csv_line(cells: Sequence[str]) -> str:
    """Cells joined as v1 wrote them: commas, no quoting needed (no cell holds a comma)."""
    return ",".join(cells) + "\n"


def split_line(text: str) -> list[str]:
    """The cells of one line this log wrote (``csv_line``'s inverse: v1's rows hold no quoted commas)."""
    return text.rstrip("\n").split(",")


def positions(header: Row, columns: Sequence[Column]) -> list[int] | None:
    """Where each of ``columns`` sits in a file's ``header`` row; None when one is missing (a torn header)."""
    if not all(column in header for column in columns):
        return None
    return [header.index(column) for column in columns]


def parse_rows(data: bytes, *, tail: bool = False) -> tuple[list[list[str]], int, bool]:
    """The rows in ``data`` (a day file's bytes from the start of a line), how many bytes their complete lines
    take, and whether the last row is the unterminated line after them. A malformed line is no row. What
    follows the last newline is a row only with ``tail`` and when it holds every column, as PHP's fgetcsv reads
    a file whose writer left out the last newline; without ``tail`` (the file this data log appends to) it is
    a line still being written, or torn by a crash."""
    end = data.rfind(b"\n") + 1
    lines = data[:end].decode("utf-8", "replace").split("\n")
    rows = [cells for cells in csv.reader(text for text in lines if text) if len(cells) == len(HEADER)]
    if tail and end < len(data):
        last = next(csv.reader([data[end:].decode("utf-8", "replace").rstrip("\r")]), [])
        if len(last) == len(HEADER):
            return [*rows, last], end, True
    return rows, end, False


def last_line(data: bytes, end: int) -> bytes:
    """The line of ``data`` that ends at ``end`` (just after its newline); empty when ``end`` is 0."""
    return data[data.rfind(b"\n", 0, end - 1) + 1 : end] if end else b""
