"""``/api/v1/api.php`` over a real listener: peers post with the network key and learn the device list."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from nutbridge.peers.devices import DeviceList
from nutbridge.server.app import Sidecar, make_app
from nutbridge.server.legacy_api import WRONG_KEY
from tests.conftest import TEST_POLICY
from tests.helpers.days import ROW_T2

KEY = "correct horse battery staple"
NOW = time.time() - 60  # peers send their own clock; older than the expiry (30 days) would be dropped, and a
# stamp from the node's future would count as its now


@pytest.fixture
async def api(data_dir: Path, tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    devices = tmp_path / "deviceList.json"
    app = make_app(data_dir, devices=DeviceList(devices, policy=TEST_POLICY), network_key=KEY)
    async with Sidecar(app, "127.0.0.1", 0) as sidecar:
        yield f"http://127.0.0.1:{sidecar.port}/api/v1", devices


def form(mac: str, **kw: str) -> dict[str, str]:
    base = {
        "api_key": KEY,
        "stamp": f"{NOW:.1f}",
        "ip": "192.0.2.10",
        "mac": mac,
        "name": "Node",
        "tz": "America/New_York",
    }
    return base | {"log": "2026-12-01 10:00:00.1"} | kw


async def post(url: str, data: dict[str, str] | bytes, content_type: str | None = None) -> tuple[int, str]:
    headers = {"Content-Type": content_type} if content_type else None
    async with aiohttp.ClientSession() as s, s.post(f"{url}/api.php", data=data, headers=headers) as r:
        if r.status == 200:
            assert r.headers["Content-Type"] == "text/html; charset=UTF-8"
        return r.status, (await r.read()).decode()


async def get(url: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200
        return (await r.read()).decode()


async def test_a_wrong_or_missing_key_is_refused_as_v1_does(api: tuple[str, Path]) -> None:
    url, devices = api
    assert await post(url, form("b8:27:eb:00:00:01", api_key="guess")) == (200, WRONG_KEY)
    assert await post(url, {"mac": "b8:27:eb:00:00:01"}) == (200, WRONG_KEY)
    body = json.dumps(form("b8:27:eb:00:00:01")).encode()
    assert await post(url, body, "application/json") == (200, WRONG_KEY)  # v1 reads form fields only
    assert not devices.exists()


async def test_peers_are_stored_and_learn_the_list(api: tuple[str, Path]) -> None:
    url, devices = api
    assert await post(url, form("b8:27:eb:00:00:01", name="First")) == (200, "")  # v1: the first write answers nothing
    status, body = await post(url, form("b8:27:eb:00:00:02", name="Second", ip="2001:db8::2"))
    assert status == 200
    listed = json.loads(body)
    assert [d["name"] for d in listed] == ["First", "Second"]
    assert '"tz":"America/New_York"' in body  # slashes unescaped, as v1 writes the timezone
    assert json.loads(devices.read_text()) == listed
    names = await get(f"{url}/chargecontroller.php?networkInfo=deviceList")
    assert names == '["First","Second"]'
    assert await get(f"{url}/chargecontroller.php?day=deviceList") == ""  # v1 gives this to anyone
    assert json.loads(await get(f"{url}/chargecontroller.php?day=deviceList&api_key={KEY}")) == listed


async def test_an_invalid_post_is_stored_nowhere(api: tuple[str, Path]) -> None:
    url, devices = api
    await post(url, form("b8:27:eb:00:00:01"))
    before = devices.read_text()
    for bad in ({"ip": "http://evil.example/"}, {"name": "../../root"}, {"mac": ""}):
        assert await post(url, form("b8:27:eb:00:00:05") | bad) == (200, "")
    assert devices.read_text() == before


async def test_an_unknown_charset_or_a_key_of_stray_bytes_is_a_wrong_key_not_a_500(api: tuple[str, Path]) -> None:
    url, devices = api
    body = f"api_key={KEY}&mac=b8:27:eb:00:00:01".encode()
    assert await post(url, body, "application/x-www-form-urlencoded; charset=no-such") == (200, WRONG_KEY)
    assert await post(url, b"api_key=%ff%fe&mac=x", "application/x-www-form-urlencoded") == (200, WRONG_KEY)
    assert not devices.exists()


async def test_a_body_over_64_kib_is_refused(api: tuple[str, Path]) -> None:
    url, devices = api
    status, _ = await post(url, form("b8:27:eb:00:00:01", log="x" * 70_000))
    assert status == 413 and not devices.exists()


async def test_get_value_reads_todays_newest_row_without_an_allow_list(api: tuple[str, Path]) -> None:
    url, _ = api
    assert await get(f"{url}/api.php?value=battery-current") == ROW_T2.split(",")[6]
    assert await get(f"{url}/api.php?value=nothing") == ""
    assert await get(f"{url}/api.php") == ""


async def test_fifty_peers_posting_1000_updates_at_once_all_end_up_in_the_list(api: tuple[str, Path]) -> None:
    url, devices = api
    stop = threading.Event()
    torn: list[str] = []

    def reader() -> None:  # looks at the file the whole time, as v1's PHP and Python readers do
        while not stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                text = devices.read_text()
                try:
                    assert isinstance(json.loads(text), list)
                except (ValueError, AssertionError):
                    torn.append(text)

    async def peer(n: int) -> None:
        for i in range(20):
            status, _ = await post(url, form(f"b8:27:eb:00:01:{n:02x}", name=f"Node {n}", stamp=f"{int(NOW) + i}"))
            assert status == 200

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        await asyncio.gather(*(peer(n) for n in range(50)))
    finally:
        stop.set()
        watcher.join()
    assert torn == [], "a reader saw a half-written device list"
    stored = json.loads(devices.read_text())
    assert sorted(d["name"] for d in stored) == sorted(f"Node {n}" for n in range(50))
    assert {d["time stamp"] for d in stored} == {f"{int(NOW) + 19}"}


@pytest.mark.parametrize("trusted", [True, False])
async def test_behind_a_trusted_proxy_each_peer_is_its_forwarded_address(
    data_dir: Path,
    tmp_path: Path,
    trusted: bool,
) -> None:
    """A v1 node's Apache proxies api.php to nutbridge: every post then comes from 127.0.0.1. With the proxy
    trusted, the address its X-Forwarded-For ends with is the sender (each has its own change budget);
    without, a client's X-Forwarded-For is not believed."""
    from nutbridge.peers.budget import ChangeBudget

    devices = DeviceList(tmp_path / "deviceList.json", policy=TEST_POLICY, budget=ChangeBudget(1))
    proxies = ("127.0.0.1/32",) if trusted else ()
    app = make_app(data_dir, devices=devices, network_key=KEY, trusted_proxies=proxies)
    async with Sidecar(app, "127.0.0.1", 0) as sidecar, aiohttp.ClientSession() as s:
        url = f"http://127.0.0.1:{sidecar.port}/api/v1/api.php"
        for n, sender in enumerate(("203.0.113.5", "198.51.100.1, 203.0.113.6")):  # a spoofed hop, then Apache's
            mac = f"b8:27:eb:00:00:0{n}"
            async with s.post(url, data=form(mac), headers={"X-Forwarded-For": sender}) as r:
                assert r.status == 200
    assert [d.mac for d in devices.current()] == (["b8:27:eb:00:00:00", "b8:27:eb:00:00:01"] if trusted
                                                   else ["b8:27:eb:00:00:00"])  # fmt: skip
