"""Fixtures the server's tests share: v1's day files in a data folder, the date the routes take for today, the
JSON API on loopback with its hand-moved clock."""

from __future__ import annotations

import datetime as dt
import sys
import types
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nutbridge.peers.devices import DeviceList
from nutbridge.server.app import Sidecar, make_app
from nutbridge.server.live import LiveSnapshot
from tests.conftest import TEST_POLICY
from tests.helpers.api import CONTROL_SECRET, KEY, Ticks
from tests.helpers.days import HEADER, ROW_T1, ROW_T2, ROW_Y1, TODAY, YESTERDAY


@pytest.fixture
def frozen_today(monkeypatch: pytest.MonkeyPatch) -> dt.date:
    """TODAY is the date the server's routes take for today during the test (``date.today()`` of the modules
    of nutbridge.server and of TODAY_READERS), so that a run crossing midnight reads the day files it wrote and
    answers as expected."""

    class Today(dt.date):
        @classmethod
        def today(cls) -> Today:
            return cls(TODAY.year, TODAY.month, TODAY.day)

    frozen = types.SimpleNamespace(**{name: getattr(dt, name) for name in dir(dt) if not name.startswith("__")})
    frozen.date = Today
    for name, module in list(sys.modules.items()):
        if (name in TODAY_READERS or name.startswith("nutbridge.server.")) and getattr(module, "dt", None) is dt:
            monkeypatch.setattr(module, "dt", frozen)
        elif name in TODAY_READERS:
            raise AssertionError(f"{name} no longer takes today from `dt`: freeze it another way")
    return TODAY


# Outside nutbridge.server, the modules whose date.today() the routes take (the day cache's today()).
TODAY_READERS = ("nutbridge.datalog.reader",)


@pytest.fixture
def data_dir(tmp_path: Path, frozen_today: dt.date) -> Path:
    """v1's data folder: yesterday's file of one row, today's of two (HEADER, ROW_Y1, ROW_T1, ROW_T2)."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / f"tracerData{YESTERDAY}.csv").write_text(f"{HEADER}\n{ROW_Y1}\n")
    (folder / f"tracerData{frozen_today}.csv").write_text(f"{HEADER}\n{ROW_T1}\n{ROW_T2}\n")
    (folder / "tracerData-old.csv.bak").write_text("an editor's backup: v1 would serve it")
    (tmp_path / "secret.csv").write_text("not in the data folder")
    return folder


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
async def api(data_dir: Path, tmp_path: Path, ticks: Ticks) -> AsyncIterator[tuple[str, LiveSnapshot]]:
    """The JSON API on loopback over ``data_dir``, with a device list, the network key, the live snapshot on
    ``ticks`` and the control secret."""
    live = LiveSnapshot(interval=10, clock=ticks)
    app = make_app(
        data_dir,
        devices=DeviceList(tmp_path / "devices.json", policy=TEST_POLICY),
        network_key=KEY,
        live=live,
        control_secret=CONTROL_SECRET,
    )
    async with Sidecar(app, "127.0.0.1", 0) as sidecar:
        yield f"http://127.0.0.1:{sidecar.port}", live
