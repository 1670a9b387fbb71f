"""A data log's readings: one to log, and reading back the polls a daemon logged."""

from __future__ import annotations

import datetime as dt
import subprocess

from nutbridge.model import Reading


def read_polls(proc: subprocess.Popen[str], count: int) -> list[str]:
    """The first ``count`` good polls the daemon printed (-v)."""
    assert proc.stdout is not None
    lines: list[str] = []
    while len(lines) < count:
        line = proc.stdout.readline()
        assert line, f"the daemon exited early: {proc.communicate(timeout=30)}"
        if " battery " in line:
            lines.append(line)
    return lines


def reading(when: dt.datetime, **kw: float) -> Reading:
    """A Tracer's reading at ``when`` (a PV power over 655.35 W, which v1 split in two words); ``kw`` changes it."""
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
