"""Retention: day files older than the days to keep are removed (by the date in their names, never by mtime,
which ``touch`` or a restore can change); nothing else in the folder is touched."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from nutbridge.datalog.dayfiles import day_files
from nutbridge.datalog.format import file_day
from nutbridge.files import remove_all

log = logging.getLogger(__name__)


def prune(folder: Path, today: dt.date, keep_days: int) -> list[Path]:
    """Delete the day files in ``folder`` older than ``keep_days`` days before ``today`` (0 keeps every day);
    returns the files removed. DataLogError when the folder cannot be listed."""
    if not keep_days:
        return []
    oldest = today - dt.timedelta(days=keep_days - 1)
    old = [p for p in day_files(folder) if file_day(p) < oldest]
    removed = remove_all(old, "old day file")
    if removed:
        log.info("data log: removed %d day file(s) older than %d days", len(removed), keep_days)
    return removed
