"""A full disk (a 16 KiB tmpfs, filled up; root only) and a read-only folder (tests.conftest.read_only) under the
port file, the device list and the token cache: the write fails with a clear error, logged once; the old file
stays whole; no temp file is left; polling and serving go on, and the next write after the fault works.

The port file's own unit tests (test_portfile.py) check PortFile alone; here it is the sink in the poll loop.
The data log's cases belong to the data log's tests."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from nutbridge.devices.enphase.token import TokenCache
from nutbridge.devices.tracer.source import TracerSource
from nutbridge.node import Node
from nutbridge.nut.portfile_text import parse_values
from nutbridge.peers import devices as devices_module
from nutbridge.peers.devices import DeviceList, written_when_due
from nutbridge.peers.entry import validate
from nutbridge.server.app import Sidecar, make_app
from nutbridge.snapshot import Comms
from tests.conftest import TEST_POLICY, need, read_only
from tests.faults.outage import HAND, watched
from tests.helpers import until
from tests.helpers.envoy_token import Cloud, make_jwt
from tests.helpers.monitor import cycle

KEY = "the network key of the disk tests"


@dataclass
class Trouble:
    """A folder, and a context in which it cannot be written: ``reason`` is what the error says."""

    folder: Path
    reason: str

    @contextlib.contextmanager
    def on(self) -> Iterator[None]:
        if self.reason == "folder not writable":
            with read_only(self.folder):
                yield
            return
        filler = self.folder / ".filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"x" * 4096)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        finally:
            os.close(fd)
        try:
            yield
        finally:
            filler.unlink()

    def names(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir())


@pytest.fixture(params=["disk full", "folder not writable"])
def trouble(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Trouble]:
    """A 16 KiB tmpfs of mode 0700 (as a state folder must be) to fill up, or a folder to make read-only."""
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    if request.param == "folder not writable":
        yield Trouble(folder, request.param)
        return
    need(os.geteuid() == 0, "root, to mount a small tmpfs")
    mount = ["mount", "-t", "tmpfs", "-o", "size=16k,mode=0700", "tmpfs", str(folder)]
    need(subprocess.run(mount, check=False, capture_output=True).returncode == 0, "mount -t tmpfs")
    try:
        yield Trouble(folder, request.param)
    finally:
        subprocess.run(["umount", str(folder)], check=True)


async def test_the_port_file_keeps_its_last_values_the_error_is_logged_once_and_polling_goes_on(
    trouble: Trouble, source: TracerSource, caplog: pytest.LogCaptureFixture
) -> None:
    port_file = trouble.folder / "solar.dev"
    port_file.write_text(HAND + "ups.status: OL\n")
    async with watched(source, port_file) as monitor:
        with trouble.on():
            for _ in range(3):
                assert (await cycle(monitor)).comms is Comms.OK  # the device answers; only the disk fails
            assert port_file.read_text() == HAND + "ups.status: OL\n"
            assert trouble.names() == ([".filler", "solar.dev"] if trouble.reason == "disk full" else ["solar.dev"])
        snapshot = await cycle(monitor)
    text = port_file.read_text()
    assert text.startswith(HAND) and parse_values(text)["battery.charge"] == snapshot.variables["battery.charge"]
    assert trouble.names() == ["solar.dev"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [f"port file {port_file}: cannot replace {port_file}: {trouble.reason}; the file is unchanged"]
    assert sum("works again" in r.getMessage() for r in caplog.records) == 1


async def test_a_device_list_that_cannot_be_written_answers_503_and_stays_as_it_was(trouble: Trouble) -> None:
    path = trouble.folder / "deviceList.json"
    devices = DeviceList(path, policy=TEST_POLICY)
    known = validate({"mac": "02:00:00:00:00:07", "ip": "192.0.2.7", "stamp": repr(time.time()), "name": "Known"})
    devices.upsert(known)
    before = path.read_bytes()
    data = trouble.folder.parent / "data"
    data.mkdir()
    app: web.Application = make_app(data, devices=devices, network_key=KEY, node=Node({}))
    new = {"mac": "02:00:00:00:00:08", "ip": "192.0.2.8", "stamp": time.time(), "name": "New"}
    async with (
        Sidecar(app, "127.0.0.1", 0) as sidecar,
        ClientSession(f"http://127.0.0.1:{sidecar.port}", headers={"Authorization": f"Bearer {KEY}"}) as http,
    ):
        with trouble.on():
            async with http.post("/api/devices", json=new) as answer:
                assert answer.status == 503
                reason = (await answer.json())["error"]
                assert (
                    reason == f"cannot write the device list deviceList.json: {trouble.reason}; the list is unchanged"
                )
                assert str(trouble.folder) not in reason  # no server path in an answer
            async with http.get("/api/devices") as answer:  # still served
                assert [d["name"] for d in await answer.json()] == ["Known"]
            assert path.read_bytes() == before
            assert ".deviceList.json.nutbridge.tmp" not in trouble.names()
        async with http.post("/api/devices", json=new) as answer:
            assert answer.status == 200
    assert [d.name for d in devices.read()] == ["Known", "New"]
    assert trouble.names() == ["deviceList.json"]


async def test_held_stamps_that_cannot_be_written_stay_in_memory_with_one_error(
    trouble: Trouble, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devices_module, "CHECK_EVERY", 0.02)
    monkeypatch.setattr(devices_module, "RETRY_AFTER", 0.02)
    path = trouble.folder / "deviceList.json"
    devices = DeviceList(path, flush_interval=0.01, policy=TEST_POLICY)
    fields = {"mac": "02:00:00:00:00:07", "ip": "192.0.2.7", "name": "Known"}
    devices.upsert(validate(fields | {"stamp": "1000"}))
    before = path.read_bytes()
    stamp = repr(time.time())
    async with written_when_due(devices):
        with trouble.on():
            devices.upsert(validate(fields | {"stamp": stamp}))  # a new stamp alone: held, no error to the poster
            await until(lambda: any(r.levelno == logging.ERROR for r in caplog.records))
            await asyncio.sleep(0.2)  # several retries
            assert path.read_bytes() == before
            assert devices.read()[0].stamp == stamp  # served from memory all along
            assert ".deviceList.json.nutbridge.tmp" not in trouble.names()
        await until(lambda: json.loads(path.read_bytes())[0]["time stamp"] == stamp)
        # the writer's thread logs the recovery after its write: wait for the line, not for the file alone
        again = f"device list {path} is written again"
        await until(lambda: any(r.getMessage() == again for r in caplog.records))
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"cannot write the device list deviceList.json: {trouble.reason}; the list is unchanged; the newer "
        "stamps stay in memory and "
        "are tried again"
    ]
    assert trouble.names() == ["deviceList.json"]


async def test_a_token_that_cannot_be_saved_is_kept_in_memory_with_one_warning(
    trouble: Trouble, caplog: pytest.LogCaptureFixture
) -> None:
    old = make_jwt(time.time() + 600)  # expires within the hour: renewed at the first get
    token_file = trouble.folder / "envoy.token"
    token_file.write_text(old)
    token_file.chmod(0o600)
    cloud = Cloud(token=make_jwt(time.time() + 180 * 86400))
    app = web.Application()
    app.router.add_post("/login/login.json", cloud.login)
    app.router.add_post("/tokens", cloud.tokens)
    async with Sidecar(app, "127.0.0.1", 0) as server:
        base = f"http://127.0.0.1:{server.port}"
        tokens = TokenCache(token_file, serial="1", username="u", password="p", login_url=f"{base}/login/login.json",
                            token_url=f"{base}/tokens")  # fmt: skip
        try:
            with trouble.on():
                assert await tokens.get() == cloud.token
                assert await tokens.get() == cloud.token  # from memory: no second attempt, no second warning
                assert token_file.read_text() == old
                assert ".envoy.token.nutbridge.tmp" not in trouble.names()
        finally:
            await tokens.aclose()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"cannot save the token to {token_file}: {trouble.reason}; keeping it in memory only"]
    assert trouble.names() == ["envoy.token"]
