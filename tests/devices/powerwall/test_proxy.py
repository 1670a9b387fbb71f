"""The Powerwall source against the real pyPowerwall proxy, not a fake one: pypowerwall-server (the packaged
successor of pyPowerwall's proxy, same routes, with the pypowerwall library in its local mode) runs in its own
process on a loopback port, logged in to a stand-in gateway over HTTPS on loopback that answers what a real
gateway answered (test-fixtures/powerwall/gateway.json, recorded in pyPowerwall's own repository); `nutbridge -s`
reads it to a port file. pyPowerwall's own simulator (pwsimulator/) is not packaged and binds port 443, so the
stand-in plays its part with the recorded answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from nutbridge.nut.portfile_text import parse_values
from tests.conftest import need
from tests.helpers import free_port

ROOT = Path(__file__).parents[3]
GATEWAY = ROOT / "test-fixtures" / "powerwall" / "gateway.json"
SERVER = Path(sys.executable).parent / "pypowerwall-server"
READY_WITHIN = 60.0  # s: a deadline for the server's first poll of the gateway, not a measurement


@contextlib.asynccontextmanager
async def gateway(certificate: tuple[Path, Path]) -> AsyncIterator[int]:
    """A gateway on a loopback HTTPS port that logs anyone in and answers the recorded paths (404 elsewhere,
    as firmware 23.44+ does for /api/devices/vitals)."""
    answers: dict[str, Any] = json.loads(GATEWAY.read_text())
    answers.pop("_note")

    async def login(request: web.Request) -> web.Response:
        await request.read()
        response = web.json_response({"email": "me@example.com", "roles": ["Home_Owner"], "token": "t0k3n"})
        response.set_cookie("AuthCookie", "c00k13")
        response.set_cookie("UserRecord", "r3c0rd")
        return response

    async def answer(request: web.Request) -> web.Response:
        if request.path in answers:
            return web.json_response(answers[request.path])
        return web.json_response({"code": 404, "error": "Not Found"}, status=404)

    app = web.Application()
    app.router.add_post("/api/login/Basic", login)
    app.router.add_get("/{tail:.*}", answer)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def pypowerwall_server(gateway_port: int, folder: Path) -> AsyncIterator[str]:
    """pypowerwall-server in local mode for the gateway at ``gateway_port``; its URL. Stopped on the way out."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(folder),
        "PW_HOST": f"127.0.0.1:{gateway_port}",
        "PW_PASSWORD": "secret",
        "PW_EMAIL": "me@example.com",
        "PW_BIND_ADDRESS": "127.0.0.1",
        "PW_PORT": str(port),
        "PW_AUTH_PATH": str(folder),
        "PW_CACHE_FILE": str(folder / ".powerwall"),
        "PW_TIMESERIES_PATH": str(folder / "timeseries.db"),
        "PW_TIMEZONE": "America/Los_Angeles",
    }
    log = (folder / "server.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        str(SERVER), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=folder
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=15)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


async def first_answer(url: str, path: str, *, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """``path``'s JSON once ``ready(answer)`` holds; fails with the server's log after READY_WITHIN."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_WITHIN
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                data = (await client.get(path)).json()
                if isinstance(data, dict) and ready(data):
                    return data
            if loop.time() > deadline:
                pytest.fail(f"pypowerwall-server gave no ready answer on {path} within {READY_WITHIN:g} s")
            await asyncio.sleep(0.2)


async def nutbridge_once(url: str, folder: Path) -> tuple[int, str, Path]:
    """`nutbridge -c … -s` against ``url``: its exit status, stderr and the port file."""
    port_file = folder / "powerwall.dev"
    port_file.write_text("")
    conf = folder / "powerwall.toml"
    conf.write_text(
        f'[source]\nkind = "powerwall"\nurl = "{url}"\ntimeout = 5\n'
        f'[nut]\nport_file = "{port_file}"\nversion = "2.8.1"\ndriver_restart_command = ""\n'
    )
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "nutbridge", "-c", str(conf), "-s"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stderr.decode(), port_file


@pytest.fixture
def server_installed() -> None:
    need(SERVER.exists(), "pypowerwall-server (a test dependency in pyproject.toml) is not installed")


@pytest.mark.usefixtures("server_installed")
async def test_the_real_proxy_to_the_port_file(certificate: tuple[Path, Path], tmp_path: Path) -> None:
    async with gateway(certificate) as gateway_port, pypowerwall_server(gateway_port, tmp_path) as url:
        await first_answer(url, "/soe", ready=lambda soe: soe.get("percentage") is not None)
        await first_answer(url, "/api/system_status", ready=lambda status: "available_blocks" in status)
        status, stderr, port_file = await nutbridge_once(url, tmp_path)
    assert status == 0, stderr
    values = parse_values(port_file.read_text())
    # The recorded gateway: /soe 20.109 %, SystemGridConnected; meters site +27 W (importing), battery −990 W
    # (Tesla's sign: charging), load 866.25 W, solar 1840 W at 243.95 V on the battery meter; 2 blocks,
    # 25 995 Wh full, 10 800 W max discharge; firmware 23.28.2 27626f98; site "Tesla Energy Gateway".
    assert values["ups.status"] == "OL CHRG"  # 20.1 % is above battery.charge.low (20): not LB
    assert values["battery.charge"] == "20"
    assert values["experimental.battery.realpower"] == "990.0"  # + charging
    assert values["battery.current"] == "4.06"  # 990 W / 243.95 V
    assert values["battery.charger.status"] == "charging"
    assert (values["input.realpower"], values["output.realpower"]) == ("27.0", "866.2")  # + importing
    assert values["experimental.pv.realpower"] == "1840.0"
    assert values["battery.runtime"] == "117"  # (20.109 − 20) % of 25 995 Wh at 866.25 W: 28.4 Wh, 117.9 s
    assert (values["ups.load"], values["ups.realpower.nominal"], values["battery.packs"]) == ("8.0", "10800", "2")
    assert values["ups.firmware"] == "23.28.2 27626f98"
    assert values["device.description"] == (
        "Tesla Powerwall, 2 units, 26.0 kWh, site Tesla Energy Gateway, via pyPowerwall 0.22.2 Server 0.13.0"
    )


@pytest.mark.usefixtures("server_installed")
async def test_the_real_proxy_without_its_gateway_is_no_data(tmp_path: Path) -> None:
    """The gateway never answers: pypowerwall-server still answers every route with HTTP 200 (null charge,
    grid "Unknown", empty meters), which is a failed poll, never a battery at 0 % or a home on battery."""
    async with pypowerwall_server(free_port(), tmp_path) as url:
        grid = await first_answer(url, "/api/system_status/grid_status", ready=lambda answer: True)
        assert grid["grid_status"] == "Unknown"
        status, stderr, port_file = await nutbridge_once(url, tmp_path)
    assert status == 1
    assert "/soe: raw_percentage is null: the proxy has no fresh charge" in stderr
    assert not port_file.exists()  # NUT's driver is told contact is lost: the port file is moved aside
