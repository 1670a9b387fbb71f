"""The data log: Solar Protocol v1's day files, appended, torn lines ignored, retention; and through the CLI."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nutbridge.datalog import HEADER, DataLog, DataLogError, day_file, day_files, read_day, row
from nutbridge.model import Reading
from tests.conftest import read_only

V1_HEADER = (
    "datetime,PV voltage,PV current,PV power L,PV power H,battery voltage,battery current,battery power L,"
    "battery power H,load voltage,load current,load power,battery percentage"
)


def reading(when: dt.datetime, **kw: float) -> Reading:
    base = {
        "battery_charge": 38.0,
        "battery_voltage": 12.15,
        "battery_current": 0.09,
        "pv_voltage": 13.35,
        "pv_current": 0.08,
        "pv_power": 700.25,  # over 655.35 W: v1 split this into L and H words
        "load_voltage": 12.15,
        "load_current": 0.18,
        "load_power": 2.18,
    }
    return Reading(time=when.timestamp(), **(base | kw))  # type: ignore[arg-type]


def test_header_and_row_are_what_v1_clients_parse() -> None:
    assert ",".join(HEADER) == V1_HEADER
    cells = row(reading(dt.datetime(2021, 2, 24, 7, 40, 12, 694530)))
    assert cells == [
        "2021-02-24 07:40:12.694530",  # naive local time, microseconds
        "13.35",
        "0.08",
        "700.25",  # the whole watts in L ...
        "0.0",  # ... and 0 in H
        "12.15",
        "0.09",
        "1.09",  # net battery power, V x I
        "0.0",
        "12.15",
        "0.18",  # the load registers, not the undocumented gap
        "2.18",
        "0.38",  # the 0-1 fraction runner.py expects
    ]
    on_the_second = row(reading(dt.datetime(2021, 2, 24, 7, 40, 12)))[0]
    assert on_the_second == "2021-02-24 07:40:12.000000"  # str(datetime) would drop the microseconds here


def test_columns_a_source_cannot_fill_are_empty() -> None:
    bare = Reading(time=time.time(), battery_charge=55.0)
    cells = row(bare)
    assert len(cells) == len(HEADER) and cells[-1] == "0.55"
    assert cells[1:-1] == [""] * (len(HEADER) - 2)


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


def test_each_local_day_has_its_file_and_old_days_are_pruned(tmp_path: Path) -> None:
    log = DataLog(tmp_path, retention_days=3)
    start = dt.datetime(2026, 11, 25, 23, 59)
    for day in range(6):
        log.append(reading(start + dt.timedelta(days=day)))
    names = [p.name for p in day_files(tmp_path)]
    assert names == ["tracerData2026-11-28.csv", "tracerData2026-11-29.csv", "tracerData2026-11-30.csv"]
    (tmp_path / "notes.txt").write_text("not ours")
    DataLog(tmp_path, retention_days=0).append(reading(start + dt.timedelta(days=10)))
    assert (tmp_path / "notes.txt").exists() and len(day_files(tmp_path)) == 4  # 0 keeps every day


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
