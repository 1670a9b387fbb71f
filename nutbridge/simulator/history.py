"""Days of simulated history for a data log: the demo's plots, the dashboard's tests and benches.

The plant of ``physics`` runs at real time of day from midnight ``days - 1`` days ago up to now, one reading
every ``interval`` seconds, written as the data log writes its rows (``datalog.format.encode``), a whole file
per day.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from nutbridge.datalog.format import HEADER, csv_line, day_file, encode
from nutbridge.model import Reading
from nutbridge.simulator.physics import Plant

PV_VOLTS = 18.5  # the panels' working voltage while the sun is up


def reading(plant: Plant, t: float) -> Reading:
    """What a Tracer would report of ``plant`` at ``t``."""
    volts, pv, load = plant.battery_voltage(), plant.pv_power(), plant.load_on_w()
    pv_volts = PV_VOLTS if pv > 0 else 0.0
    return Reading(time=t, battery_charge=round(plant.soc, 1), battery_voltage=round(volts, 2),
                   battery_current=round(plant.battery_watts() / volts, 2), pv_voltage=pv_volts,
                   pv_current=round(pv / PV_VOLTS, 2), pv_power=round(pv, 1), load_voltage=round(volts, 2),
                   load_current=round(load / volts, 2), load_power=round(load, 1))  # fmt: skip


def write_history(folder: Path, *, days: int = 7, interval: float = 60.0, now: float | None = None) -> int:
    """Write the day files of ``days`` days (today's up to ``now``) into ``folder``; a day whose file exists is
    left as it is. Returns the rows written into today's file."""
    now = time.time() if now is None else now
    today = dt.datetime.fromtimestamp(now).date()
    start = dt.datetime.combine(today - dt.timedelta(days=days - 1), dt.time())
    plant = Plant(seconds=0.0, soc=60.0)
    folder.mkdir(parents=True, exist_ok=True)
    t, rows_today = start.timestamp(), 0
    for n in range(days):
        day = start.date() + dt.timedelta(days=n)
        end = min(dt.datetime.combine(day + dt.timedelta(days=1), dt.time()).timestamp(), now)
        lines = [csv_line(HEADER)]
        while t < end:
            lines.append(csv_line(encode(reading(plant, t))))
            plant.advance(interval)
            t += interval
        path = day_file(folder, day)
        if not path.exists():
            path.write_text("".join(lines))
            rows_today = len(lines) - 1 if day == today else rows_today
    return rows_today
