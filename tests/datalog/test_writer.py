"""The data log's writer: Solar Protocol v1's day files, appended, torn lines ignored, rows held for the flush
window; and through the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nutbridge.datalog.dayfiles import DataLogError, day_files, read_day
from nutbridge.datalog.format import DAY_FILE, HEADER, day_file
from nutbridge.datalog.writer import DataLog
from nutbridge.sinks import SinkRunner
from nutbridge.snapshot import Comms, Snapshot
from tests.conftest import daemon_config, read_only
from tests.helpers.datalog import read_polls, reading
from tests.helpers.days import HEADER as V1_HEADER


def test_rows_are_appended_never_rewritten(tmp_path: Path) -> None:
    log = DataLog(tmp_path)
    when = dt.datetime(2026, 12, 1, 10, 0, 0)
    path = log.append(reading(when))
    assert path == tmp_path / "tracerData2026-12-01.csv"
    first = path.read_text()
    inode = path.stat().st_ino
    log.append(reading(when + dt.timedelta(minutes=2), battery_charge=39))
    text = path.read_text()
    assert text.startswith(first) and path.stat().st_ino == inode
    assert text.count(V1_HEADER) == 1 and text.startswith(V1_HEADER + "\n")
    rows = read_day(path)
    assert [r[0] for r in rows] == ["datetime", "2026-12-01 10:00:00.000000", "2026-12-01 10:02:00.000000"]
    assert rows[2][-1] == "0.39"


def test_a_torn_last_line_is_ignored_and_the_next_row_is_whole(tmp_path: Path) -> None:
    path = day_file(tmp_path, dt.date(2026, 12, 1))
    good = DataLog(tmp_path).append(reading(dt.datetime(2026, 12, 1, 9, 0)))
    assert good == path
    with path.open("a") as f:
        f.write("2026-12-01 09:02:00.000000,13.3")  # kill -9 in the middle of a row
    assert len(read_day(path)) == 2  # header and the good row; the torn line is not an error
    DataLog(tmp_path).append(reading(dt.datetime(2026, 12, 1, 9, 4)))  # a restarted daemon
    rows = read_day(path)
    assert [r[0] for r in rows] == ["datetime", "2026-12-01 09:00:00.000000", "2026-12-01 09:04:00.000000"]
    path.write_bytes(path.read_bytes() + b"\xff\xfe garbage, not,a row\n")
    assert len(read_day(path)) == 3


def test_an_unwritable_folder_is_a_clear_error_and_keeps_the_rows(tmp_path: Path) -> None:
    log = DataLog(tmp_path)
    path = log.append(reading(dt.datetime(2026, 12, 1, 9, 0)))
    before = path.read_bytes()
    os.chmod(path, 0o444)
    with read_only(tmp_path), pytest.raises(DataLogError, match=r"cannot append to .*; earlier rows are kept"):
        log.append(reading(dt.datetime(2026, 12, 1, 9, 2)))
    assert path.read_bytes() == before


def test_s_with_data_dir_logs_the_poll(tmp_path: Path, port_file: Path) -> None:
    folder = tmp_path / "data"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nutbridge",
            "--simulate",
            "--port-file",
            str(port_file),
            "-s",
            "--data-dir",
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (path,) = day_files(folder)
    assert path.name == f"tracerData{dt.date.today().isoformat()}.csv"
    rows = read_day(path)
    assert rows[0] == list(HEADER) and len(rows) == 2
    assert 0 <= float(rows[1][-1]) <= 1


# ------------------------------------------------------------------ batching (flush_interval)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def good(seq: int, when: dt.datetime) -> Snapshot:
    return Snapshot(seq=seq, time=when.timestamp(), comms=Comms.OK, reading=reading(when), variables={})


def failed(seq: int) -> Snapshot:
    return Snapshot(seq=seq, time=time.time(), comms=Comms.FAILING, variables={}, failures=1)


def stamps(folder: Path) -> dict[str, list[str]]:
    """Each day file's row stamps (its header checked)."""
    out = {}
    for path in day_files(folder):
        rows = read_day(path)
        assert rows[0] == list(HEADER) and path.read_bytes().endswith(b"\n")
        out[path.name] = [r[0] for r in rows[1:]]
    return out


async def test_rows_are_held_until_the_oldest_has_waited_the_window(tmp_path: Path) -> None:
    clock = Clock()
    log = DataLog(tmp_path, flush_interval=60, clock=clock)
    start = dt.datetime(2026, 12, 1, 10, 0, 0)
    for i in range(3):
        await log.update(good(i + 1, start + dt.timedelta(seconds=5 * i)))
        clock.now += 5
    assert day_files(tmp_path) == [] and log.due() == 45  # nothing on disk yet: 15 s of the 60 s window went by
    clock.now += 45
    await log.update(failed(4))  # a failed poll writes no row, but ends the window
    assert stamps(tmp_path) == {"tracerData2026-12-01.csv": [f"2026-12-01 10:00:{s:02d}.000000" for s in (0, 5, 10)]}
    assert log.due() is None
    await log.update(good(5, start + dt.timedelta(seconds=60)))
    assert log.due() == 60  # a new window starts with the next row held
    await log.flush()  # as at a stop
    assert len(stamps(tmp_path)["tracerData2026-12-01.csv"]) == 4


async def test_a_day_change_flushes_and_every_row_goes_into_its_own_day_file(tmp_path: Path) -> None:
    clock = Clock()
    log = DataLog(tmp_path, flush_interval=300, clock=clock)
    before = dt.datetime(2026, 12, 1, 23, 59, 50)
    await log.update(good(1, before))
    await log.update(good(2, before + dt.timedelta(seconds=5)))
    assert day_files(tmp_path) == []
    await log.update(good(3, before + dt.timedelta(seconds=10)))  # midnight: the rows go out, each to its day
    first, second = "tracerData2026-12-01.csv", "tracerData2026-12-02.csv"
    assert stamps(tmp_path) == {
        first: ["2026-12-01 23:59:50.000000", "2026-12-01 23:59:55.000000"],
        second: ["2026-12-02 00:00:00.000000"],
    }
    assert log.due() is None
    # rows of several days in one batch (a clock stepped back): each goes by its own reading's date
    days = [dt.date(2026, 12, 2), dt.date(2026, 12, 1), dt.date(2026, 12, 2)]
    lines = [f"2026-12-0{d.day} 01:00:0{i}.000000" + ",1" * (len(HEADER) - 1) + "\n" for i, d in enumerate(days)]
    assert log.write(list(zip(days, lines, strict=True))) == (3, None)
    files = stamps(tmp_path)
    assert files[first][2:] == ["2026-12-01 01:00:01.000000"]
    assert files[second][1:] == ["2026-12-02 01:00:00.000000", "2026-12-02 01:00:02.000000"]


async def test_a_failed_flush_keeps_the_rows_and_writes_them_later(tmp_path: Path) -> None:
    clock = Clock()
    log = DataLog(tmp_path, flush_interval=10, clock=clock)
    path = log.append(reading(dt.datetime(2026, 12, 1, 9, 0)))  # the file exists; now the folder turns read-only
    os.chmod(path, 0o444)
    with read_only(tmp_path):
        await log.update(good(1, dt.datetime(2026, 12, 1, 9, 0, 5)))
        clock.now += 10
        with pytest.raises(DataLogError, match="cannot append"):
            await log.update(good(2, dt.datetime(2026, 12, 1, 9, 0, 10)))
        due = log.due()
        assert due is not None and due > 0  # tried again later, not at every poll
    os.chmod(path, 0o644)
    clock.now += 30
    await log.update(failed(3))
    assert stamps(tmp_path)["tracerData2026-12-01.csv"] == [f"2026-12-01 09:00:{s:02d}.000000" for s in (0, 5, 10)]


async def test_the_runner_flushes_when_the_window_ends_with_no_new_poll(tmp_path: Path) -> None:
    clock = Clock()
    log = DataLog(tmp_path, flush_interval=0.2, clock=clock)  # the runner sleeps 0.2 s, then asks again
    runner = SinkRunner(log, queue_size=64)
    task = asyncio.create_task(runner.run())
    runner.offer(good(1, dt.datetime(2026, 12, 1, 9, 0)))
    assert await runner.handled(1)
    for _ in range(3):
        await asyncio.sleep(0.2)
        assert day_files(tmp_path) == []  # the test's clock stands still: the window has not ended
    clock.now += 1
    while not day_files(tmp_path):  # noqa: ASYNC110 - the runner's timer, not a poll, writes it: nothing to wait on
        await asyncio.sleep(0.05)
    assert stamps(tmp_path) == {"tracerData2026-12-01.csv": ["2026-12-01 09:00:00.000000"]}
    runner.offer(good(2, dt.datetime(2026, 12, 1, 9, 0, 5)))
    runner.close()  # a stop writes what is held
    await task
    assert len(stamps(tmp_path)["tracerData2026-12-01.csv"]) == 2


def run_daemon(folder: Path, flush_interval: float, poll_interval: float = 0.2) -> subprocess.Popen[str]:
    config = daemon_config(folder, f'[datalog]\nfolder = "log"\nflush_interval = {flush_interval}\n', poll_interval)
    return subprocess.Popen(
        [sys.executable, "-m", "nutbridge", "-c", str(config), "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def rows_on_disk(folder: Path) -> list[str]:
    """The stamps of every row in the day files, oldest day first."""
    return [row for rows in stamps(folder).values() for row in rows] if folder.exists() else []


def test_sigterm_writes_every_held_row(tmp_path: Path) -> None:
    started = dt.date.today()
    proc = run_daemon(tmp_path, flush_interval=3600)
    try:
        seen = read_polls(proc, 8)
        assert rows_on_disk(tmp_path / "log") == [] or dt.date.today() != started  # held (unless midnight passed)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    polls = len(seen) + sum(" battery " in line for line in out.splitlines())
    rows = rows_on_disk(tmp_path / "log")
    assert len(rows) == polls and rows == sorted(rows)  # every good poll, once, in order
    assert [p.name for p in (tmp_path / "log").iterdir() if not DAY_FILE.match(p.name)] == []  # no temp files


def test_kill_9_loses_only_held_rows_and_leaves_whole_files(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    proc = run_daemon(tmp_path, flush_interval=1)
    try:
        seen = read_polls(proc, 5)
        while len(rows_on_disk(log_dir)) < 5:  # windows end while the daemon polls: its timer flushes them
            assert len(seen) < 500, "no rows were flushed"
            seen += read_polls(proc, 1)
    finally:
        proc.kill()
        out, _ = proc.communicate(timeout=30)
    polls = len(seen) + sum(" battery " in line for line in out.splitlines())
    rows = rows_on_disk(log_dir)  # whole and parseable: every line complete, the header first
    assert 5 <= len(rows) <= polls and rows == sorted(rows) and len(set(rows)) == len(rows)
    proc = run_daemon(tmp_path, flush_interval=1)  # a restart after the crash appends after the rows that survived
    try:
        read_polls(proc, 3)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    after = rows_on_disk(log_dir)
    assert after[: len(rows)] == rows and len(after) >= len(rows) + 3
    assert [p.name for p in log_dir.iterdir() if not DAY_FILE.match(p.name)] == []
