"""Retention: the day files older than the days to keep go, by the date in their names; nothing else does."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from nutbridge.datalog.dayfiles import day_files
from nutbridge.datalog.writer import DataLog
from tests.helpers.datalog import reading


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
