"""Load control against the simulator, through the running daemon: the Tracer's load coil over Modbus."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp

from nutbridge.devices.load_switch import LoadSwitch
from nutbridge.server.app import Sidecar, make_app
from nutbridge.server.control import LoadControl
from nutbridge.simulator.source import SimulatedSource
from tests.conftest import daemon_config
from tests.helpers import GUARD, free_port

SECRET = "a secret of sixteen or more characters"
BEARER = {"Authorization": f"Bearer {SECRET}"}


async def test_the_simulated_tracers_load_coil_switches_and_reads_back() -> None:
    async with SimulatedSource(timeout=0.5) as simulated:
        assert await simulated.load_output() is True  # the load starts on
        assert await simulated.load_output(False) is False
        assert simulated.plant.load_on_w() == 0
        reading = await simulated.read()  # a poll after the switch still works on the same link
        assert reading.load_power == 0
        assert await simulated.load_output(True) is True


async def test_the_daemon_switches_the_load_with_the_token_only(tmp_path: Path) -> None:
    port = free_port()
    toml = daemon_config(
        tmp_path,
        f'[datalog]\nfolder = "log"\n[api]\nlisten = "127.0.0.1:{port}"\n[control]\nsecret = "{SECRET}"\n',
        poll_interval=0.3,
    )
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nutbridge", "-c", str(toml), stderr=asyncio.subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}/control/load"
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(int(GUARD / 0.1)):  # until it listens; a guard against a hang
                try:
                    async with s.get(url, headers=BEARER) as r:
                        if r.status == 200:
                            assert await r.json() == {"load": "on"}
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            for data, status in (({"value": "off", "token": "wrong"}, 401), ({"value": "off"}, 401),
                                 ({"value": "dim", "token": SECRET}, 400)):  # fmt: skip
                async with s.post(url, data=data) as r:
                    assert r.status == status, await r.text()
            async with s.post(url, data={"value": "off", "token": SECRET}) as r:
                assert (r.status, await r.json()) == (200, {"load": "off"})
            async with s.post(url, data={"value": "x" * 70_000, "token": SECRET}) as r:
                assert r.status == 413
            for _ in range(int(GUARD / 0.1)):  # until the next polls see the load gone
                async with s.get(f"http://127.0.0.1:{port}/api/status") as r:
                    body = await r.json() if r.status == 200 else {}
                if body.get("reading", {}).get("load_power") == 0:
                    break
                await asyncio.sleep(0.1)
            assert body["reading"]["load_power"] == 0
    finally:
        daemon.terminate()
        _, err = await daemon.communicate()
    log = err.decode()
    assert daemon.returncode == 0, log
    assert "load control: 127.0.0.1 asked for the load off; it was on, it is off" in log
    assert SECRET not in log


async def test_a_token_in_the_url_is_refused_and_a_header_or_form_is_taken(tmp_path: Path) -> None:
    """A token in a query string lands in access logs, proxies' logs and browser history: it is refused, right or
    wrong, and the load is left as it was; the token goes in Authorization: Bearer or in a POST form."""
    async with SimulatedSource(timeout=0.5) as simulated:
        control = LoadControl(SECRET, LoadSwitch(simulated))
        async with (
            Sidecar(make_app(tmp_path, control=control), "127.0.0.1", 0) as sidecar,
            aiohttp.ClientSession() as s,
        ):
            url = f"http://127.0.0.1:{sidecar.port}/control/load"
            for method, kw in (("GET", {}), ("POST", {"data": {"value": "off"}})):
                async with s.request(method, url, params={"token": SECRET}, **kw) as r:  # type: ignore[arg-type]
                    assert r.status == 400, method
                    assert "send it as Authorization: Bearer" in (await r.json())["error"]
            assert await simulated.load_output() is True  # the POST switched nothing
            async with s.get(url, headers=BEARER) as r:
                assert (r.status, await r.json()) == (200, {"load": "on"})
            async with s.get(url, headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401
            async with s.post(url, data={"value": "off"}, headers=BEARER) as r:
                assert (r.status, await r.json()) == (200, {"load": "off"})
            async with s.post(url, data={"value": "on", "token": SECRET}) as r:
                assert (r.status, await r.json()) == (200, {"load": "on"})
