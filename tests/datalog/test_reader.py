"""The day cache reads a growing day file from where it ended, and always answers what a fresh read of the
file would: appended rows, a torn line completed later, a file rewritten or replaced."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from nutbridge.datalog.dayfiles import day_files, read_day
from nutbridge.datalog.reader import SETTLED_NS, DayCache
from nutbridge.simulator.history import write_history


def lines_of_a_day(tmp_path: Path) -> list[bytes]:
    source = tmp_path / "source"
    write_history(source, days=2, interval=600)
    return day_files(source)[0].read_bytes().splitlines(keepends=True)  # yesterday's: a whole day, 145 lines


def test_a_growing_file_is_read_from_where_it_ended_and_answers_as_a_fresh_read(tmp_path: Path) -> None:
    lines = lines_of_a_day(tmp_path)
    assert len(lines) == 145
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "tracerData2026-12-02.csv"
    cache = DayCache(folder)

    def same_as_a_fresh_read() -> list[tuple[str, ...]]:
        rows = cache.rows(path.name) or []
        assert [list(r) for r in rows] == read_day(path)
        assert cache.numbers(path.name, rows, 0) == DayCache(folder).numbers(path.name, rows, 0)
        return [tuple(r) for r in rows]

    path.write_bytes(b"".join(lines[:10]))
    first = cache.rows(path.name) or []
    same_as_a_fresh_read()
    with path.open("ab") as f:  # rows appended, the last one torn (a crash, or a write under way)
        f.write(b"".join(lines[10:20]) + lines[20][:15])
    grown = cache.rows(path.name) or []
    assert same_as_a_fresh_read()[-1] == tuple(read_day(path)[-1])
    assert all(a is b for a, b in zip(first, grown, strict=False))  # the rows read before were not parsed again
    with path.open("ab") as f:  # the torn line completed, more after it
        f.write(lines[20][15:] + b"".join(lines[21:30]))
    assert len(same_as_a_fresh_read()) == 30

    edited = path.read_bytes().replace(lines[7], lines[7].replace(b",0.0,", b",9.9,", 1))
    assert edited != path.read_bytes()
    with path.open("r+b") as g:  # a cell edited in place (same inode, same size), as an editor saves
        g.write(edited)
    assert "9.9" in same_as_a_fresh_read()[7]
    with path.open("r+b") as g:  # rewritten in place with other rows, longer than before
        g.write(b"".join(lines[:5]) + b"".join(lines[31:70]))
    assert len(same_as_a_fresh_read()) == 44
    os.truncate(path, len(b"".join(lines[:5])))  # shorter
    assert len(same_as_a_fresh_read()) == 5
    replaced = folder / "new.csv"  # replaced by another file, longer
    replaced.write_bytes(b"".join(lines[:3]) + b"".join(lines[40:]))
    replaced.rename(path)
    same_as_a_fresh_read()


def test_repeated_cells_are_kept_once(tmp_path: Path) -> None:
    write_history(tmp_path, days=2, interval=600)
    cache = DayCache(tmp_path)
    rows = cache.rows(day_files(tmp_path)[0].name) or []
    cells = [cell for row in rows[1:] for cell in row[1:]]
    assert len({id(c) for c in cells}) == len(set(cells)) < len(cells)


def settled_clock() -> int:
    """A wall clock far enough ahead that every listing counts as one of a settled folder, and is kept."""
    return time.time_ns() + 2 * SETTLED_NS


def test_a_kept_listing_sees_day_files_made_removed_and_renamed_in(tmp_path: Path) -> None:
    lines = lines_of_a_day(tmp_path)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "tracerData2026-12-01.csv").write_bytes(b"".join(lines[:5]))
    cache = DayCache(folder, clock=settled_clock)
    assert cache.names() == ["tracerData2026-12-01.csv"]
    assert cache._listed is not None  # kept: the next call only stats the folder
    assert cache.names() == ["tracerData2026-12-01.csv"]

    def changed(change: Callable[[], object]) -> list[str]:
        time.sleep(0.05)  # past the file system's clock tick: the change gets stamps of its own (no timing asserted)
        change()
        return cache.names()

    today = folder / "tracerData2026-12-02.csv"
    assert changed(lambda: today.write_bytes(b"".join(lines[:3]))) == [
        "tracerData2026-12-01.csv",
        "tracerData2026-12-02.csv",
    ]
    assert changed((folder / "tracerData2026-12-01.csv").unlink) == ["tracerData2026-12-02.csv"]
    other = folder / "tmp"
    other.write_bytes(lines[0])
    assert changed(lambda: other.rename(folder / "tracerData2026-12-03.csv")) == [
        "tracerData2026-12-02.csv",
        "tracerData2026-12-03.csv",
    ]
    assert changed(lambda: (folder / "notes.txt").write_text("not a day file")) == [
        "tracerData2026-12-02.csv",
        "tracerData2026-12-03.csv",
    ]


def test_a_listing_of_a_folder_just_changed_is_not_kept(tmp_path: Path) -> None:
    """A change in the same clock tick as the listing could leave the folder's stamps as they were: such a
    listing is made again at the next call, so a file made right after it is seen."""
    (tmp_path / "tracerData2026-12-01.csv").write_text("datetime\n")
    cache = DayCache(tmp_path)
    assert cache.names() == ["tracerData2026-12-01.csv"]
    assert cache._listed is None
    (tmp_path / "tracerData2026-12-02.csv").write_text("datetime\n")
    assert cache.names() == ["tracerData2026-12-01.csv", "tracerData2026-12-02.csv"]
    assert DayCache(tmp_path / "missing").names() == []


class Held:
    """Rows a data log holds for one file, as ``DataLog.held_rows`` gives them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: list[list[str]] = []

    def held_rows(self, name: str) -> list[list[str]]:
        return self.rows if name == self.name else []

    def held_names(self) -> list[str]:
        return [self.name] if self.rows else []


def test_numbers_follow_the_rows_through_held_rows_and_their_flush(tmp_path: Path) -> None:
    lines = lines_of_a_day(tmp_path)
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "tracerData2026-12-02.csv"
    held = Held(path.name)
    cache = DayCache(folder, held)
    path.write_bytes(b"".join(lines[:20]))
    for start in range(20, 100, 20):  # rows held, then flushed to the file, four times over
        held.rows = [line.decode().rstrip("\n").split(",") for line in lines[start : start + 20]]
        for column in (0, 1, 5):
            rows = cache.rows(path.name) or []
            assert len(rows) == start + 20
            assert cache.numbers(path.name, rows, column) == DayCache(folder, held).numbers(path.name, rows, column)
        with path.open("ab") as f:
            f.write(b"".join(lines[start : start + 20]))
        held.rows = []
        for column in (0, 1, 5):
            rows = cache.rows(path.name) or []
            assert cache.numbers(path.name, rows, column) == DayCache(folder).numbers(path.name, rows, column)


class FakeLog:
    """What a data log of this process holds (nothing): its presence says it appends to today's file."""

    def held_rows(self, name: str) -> list[list[str]]:
        return []

    def held_names(self) -> list[str]:
        return []


def test_a_last_line_without_its_newline_is_a_row_as_php_reads_it(tmp_path: Path) -> None:
    """v1's PHP (fgetcsv) serves a last line that lacks its newline: so do we, and never twice once it is ended
    or more rows follow; a line short of columns stays no row (a torn write)."""
    lines = lines_of_a_day(tmp_path)
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "tracerData2026-12-02.csv"
    path.write_bytes(b"".join(lines[:5]) + lines[5].rstrip(b"\n"))
    cache = DayCache(folder)
    expected = [line.decode().rstrip("\n").split(",") for line in lines]
    assert [list(r) for r in cache.rows(path.name) or []] == expected[:6]
    with path.open("ab") as f:  # the writer ends the line and adds one more without its newline
        f.write(b"\n" + lines[6].rstrip(b"\n"))
    assert [list(r) for r in cache.rows(path.name) or []] == expected[:7]
    with path.open("ab") as f:  # then half a line: torn, not a row
        f.write(b"\n" + lines[7][:20])
    assert [list(r) for r in cache.rows(path.name) or []] == expected[:7]
    assert [list(r) for r in DayCache(folder).rows(path.name) or []] == expected[:7]


def test_in_the_file_this_process_logs_to_an_unended_line_is_a_write_under_way(tmp_path: Path) -> None:
    lines = lines_of_a_day(tmp_path)
    folder = tmp_path / "data"
    folder.mkdir()
    cache = DayCache(folder, held=FakeLog())
    today = folder / cache.today()
    today.write_bytes(b"".join(lines[:5]) + lines[5].rstrip(b"\n"))
    assert len(cache.rows(today.name) or []) == 5
    other = folder / "tracerData2026-12-02.csv"  # a day it does not write: as PHP reads it
    other.write_bytes(today.read_bytes())
    assert len(cache.rows(other.name) or []) == 6
