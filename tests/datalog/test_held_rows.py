"""Rows the data log still holds (its flush window) are in every answer that reads the day files: the JSON API,
the v1 routes and their memo of multi-day answers, the newest cell the election reads."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from types import MappingProxyType

import aiohttp

from nutbridge.datalog.format import Column, day_file
from nutbridge.datalog.reader import DayCache
from nutbridge.datalog.writer import DataLog
from nutbridge.model import Reading
from nutbridge.server.app import Sidecar, make_app
from nutbridge.snapshot import Comms, Snapshot


def good(t: float, pv: float) -> Snapshot:
    reading = Reading(time=t, battery_charge=70.0, pv_power=pv, pv_voltage=18.0, battery_voltage=13.1)
    return Snapshot(seq=1, time=t, comms=Comms.OK, reading=reading, variables=MappingProxyType({}))


async def get(url: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200
        return await r.text()


async def test_held_rows_are_served_before_they_are_written(tmp_path: Path) -> None:
    datalog = DataLog(tmp_path, flush_interval=300)
    cache = DayCache(tmp_path, held=datalog)
    now = time.time()
    async with Sidecar(make_app(tmp_path, cache=cache), "127.0.0.1", 0) as sidecar:
        url = f"http://127.0.0.1:{sidecar.port}"
        await datalog.update(good(now - 2, 40.0))
        assert not day_file(tmp_path, dt.date.fromtimestamp(now)).exists()  # held: no file yet
        body = await get(f"{url}/api/readings?fields=PV%20power%20L")
        assert '"40.0"' in body
        assert await get(f"{url}/api/v1/chargecontroller.php?value=PV-power-L") == "40.0"
        week = await get(f"{url}/api/v1/chargecontroller.php?value=PV-power-L&duration=7")
        await datalog.update(good(now - 1, 55.0))  # one more held row: the memo of the week must not hide it
        again = await get(f"{url}/api/v1/chargecontroller.php?value=PV-power-L&duration=7")
        assert "55" in again and again != week
        assert cache.newest(Column.PV_POWER_L) == "55.0"  # what the election reads of this node
        await datalog.flush()
        assert day_file(tmp_path, dt.date.fromtimestamp(now)).read_text().count("\n") == 3  # header and both
        assert await get(f"{url}/api/v1/chargecontroller.php?value=PV-power-L&duration=7") == again


def test_the_day_cache_keeps_the_newest_files_it_read_and_no_more(tmp_path: Path) -> None:
    from nutbridge.datalog.reader import MAX_FILES
    from nutbridge.simulator.history import write_history

    write_history(tmp_path, days=MAX_FILES + 4, interval=3600)
    cache = DayCache(tmp_path)
    names = cache.names()
    assert len(names) == MAX_FILES + 4
    for name in names:  # a month's query reads them all
        assert cache.rows(name)
        cache.numbers(name, cache.rows(name) or [], 0)
    kept = set(cache._files)
    assert kept == set(names[-MAX_FILES:])
    assert {name for name, _ in cache._parsed} <= kept
    misses = cache.misses
    assert cache.rows(names[-1]) and cache.misses == misses  # the newest still a hit
    assert cache.rows(names[0]) and cache.misses == misses + 1  # the oldest read again
