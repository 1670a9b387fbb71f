"""The JSON API over a real listener: status and health from the live snapshot, readings, devices, OpenAPI."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from nutbridge.datalog.reader import DayCache
from nutbridge.node import Node, load_local_json
from nutbridge.server.api import READINGS_WAITING, JsonApi
from nutbridge.server.app import Sidecar, make_app
from nutbridge.server.live import LiveSnapshot
from nutbridge.snapshot import Comms
from tests.helpers.api import KEY, Ticks, snapshot
from tests.helpers.days import HEADER, ROW_Y1, T1, T2, TODAY, YESTERDAY


async def call(url: str, method: str = "GET", **kw: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.request(method, url, **kw) as r:
        assert r.headers["Content-Type"].startswith("application/json")
        return r.status, await r.json()


async def test_status_and_health_follow_the_live_snapshot(api: tuple[str, LiveSnapshot], ticks: Ticks) -> None:
    url, live = api
    assert await call(f"{url}/health") == (503, {"status": "unhealthy", "reason": "no poll has answered yet"})
    assert (await call(f"{url}/api/status"))[0] == 503
    await live.update(snapshot())
    status, body = await call(f"{url}/api/status")
    assert status == 200 and body["comms"] == "ok" and body["fresh"] is True
    assert body["variables"] == {"ups.status": "OL CHRG"} and body["reading"]["pv_power"] == 88.5
    assert body["age"] < 60 and body["error"] is None
    assert await call(f"{url}/health") == (200, {"status": "ok"})
    await live.update(snapshot(Comms.FAILING))  # inside the grace: still fresh
    assert (await call(f"{url}/health"))[0] == 200
    await live.update(snapshot(Comms.LOST))
    status, body = await call(f"{url}/health")
    assert status == 503 and body["reason"].startswith("comms lost: no answer")
    status, body = await call(f"{url}/api/status")
    assert status == 200 and body["comms"] == "lost" and body["error"] == "no answer"
    assert body["variables"] == {"ups.status": "OL CHRG"}  # the last good values, with their age
    await live.update(snapshot(age=3 * 86400))  # stamped days ago by a wall clock NTP then stepped: still fresh
    assert (await call(f"{url}/health"))[0] == 200
    assert (await call(f"{url}/api/status"))[1]["age"] == 0
    ticks.now += 45  # three intervals with no good poll
    status, body = await call(f"{url}/health")
    assert status == 503 and body["reason"] == "the last good poll is 45 s old"
    assert (await call(f"{url}/api/status"))[1]["age"] == 45


async def test_readings_from_the_log(api: tuple[str, LiveSnapshot]) -> None:
    url, _ = api
    status, body = await call(f"{url}/api/readings?fields=PV voltage,battery percentage")
    assert status == 200
    assert body == {
        "fields": ["datetime", "PV voltage", "battery percentage"],
        "rows": [[T1, "13.35", "0.38"], [T2, "13.33", "0.36"]],
    }
    status, body = await call(f"{url}/api/readings?fields=PV voltage&step=3600")
    assert body["rows"] == [[T1, "13.35"]]  # both rows fall in one hour
    status, body = await call(f"{url}/api/charge-controller?days=2&fields=PV voltage")  # Solar Protocol v3's name
    assert status == 200 and len(body["rows"]) == 3
    for bad, reason in (
        ("fields=nope", "fields: unknown nope"),
        ("from=yesterday", "bad query"),
        ("days=99", "days: 1-31"),
        (f"from={TODAY}&to=2000-01-01", "from before to"),
        ("step=-5", "step"),
        ("step=1e-300", "step: seconds, 0 (every row) or 0.001-86400"),  # was a 500: the slot number overflowed
        ("fields=", "fields: name one column or more"),  # was every column: the document names one at least
        (f"days=2&from={TODAY}", "days: instead of from/to, not with them"),  # was from/to ignored, unchecked
    ):
        status, body = await call(f"{url}/api/readings?{bad}")
        assert status == 400 and reason in body["error"], (bad, body)


async def test_readings_as_columns_for_charts(api: tuple[str, LiveSnapshot], data_dir: Path) -> None:
    url, _ = api
    status, body = await call(f"{url}/api/readings?fields=PV voltage,battery percentage&format=columns")
    assert status == 200 and body["fields"] == ["datetime", "PV voltage", "battery percentage"]
    times, volts, charge = body["columns"]
    assert times == [round(datetime.fromisoformat(t).timestamp(), 3) for t in (T1, T2)]
    assert volts == [13.35, 13.33] and charge == [0.38, 0.36]
    status, body = await call(f"{url}/api/readings?fields=PV voltage&step=3600&format=columns")
    assert len(body["columns"][0]) == 1  # the step as for rows
    # an empty cell and one that is not a number are null; a row whose time cannot be read is left out
    today = data_dir / f"tracerData{TODAY}.csv"
    cells = today.read_text().splitlines()[-1].split(",")
    bad_time, empty = ["not a time", *cells[1:]], [cells[0][:-1] + "9", "", *cells[2:]]
    not_number = [cells[0][:-1] + "8", "nan", *cells[2:]]
    with today.open("a") as f:
        f.write("\n".join(",".join(row) for row in (bad_time, empty, not_number)) + "\n")
    status, body = await call(f"{url}/api/readings?fields=PV voltage&format=columns")
    assert status == 200 and len(body["columns"][0]) == 4 and body["columns"][1][2:] == [None, None]
    assert (await call(f"{url}/api/readings?format=csv"))[1]["error"] == "bad query: format: rows or columns"


async def test_the_last_date_and_a_file_without_its_header_are_no_500(
    api: tuple[str, LiveSnapshot],
    data_dir: Path,
) -> None:
    url, _ = api
    assert (
        await call(f"{url}/api/readings?from=9999-12-31&to=9999-12-31")
        == (  # the day after overflowed
            200,
            {"fields": ["datetime", *HEADER.split(",")[1:]], "rows": []},
        )
    )
    assert await call(f"{url}/api/readings?from=0001-01-01&to=0001-01-01") == (
        200,
        {"fields": ["datetime", *HEADER.split(",")[1:]], "rows": []},
    )
    (data_dir / f"tracerData{YESTERDAY}.csv").write_text(f"{ROW_Y1}\n")  # its header torn away: no columns
    status, body = await call(f"{url}/api/readings?days=2&fields=PV voltage")
    assert status == 200 and body["rows"] == [[T1, "13.35"], [T2, "13.33"]]


async def test_bodies_and_keys_that_are_not_text_are_refused(api: tuple[str, LiveSnapshot]) -> None:
    url, _ = api
    bearer = {"Authorization": f"Bearer {KEY}"}
    for data, content_type, reason in (
        (b"{}", "application/json; charset=no-such", "the body's charset 'no-such' is unknown"),  # was a 500
        (b"[" * 60000, "application/json", "the body is not JSON: nested too deeply"),  # was a 500
        (b"\xff{}", "application/json", "the body is not utf-8 text"),
        (b"mac=b8:27:eb:00:00:01&ip=192.0.2.5", "application/x-www-form-urlencoded", "the body is not JSON"),
    ):
        headers = bearer | {"Content-Type": content_type}
        status, body = await call(f"{url}/api/devices", "POST", data=data, headers=headers)
        assert (status, body) == (400, {"error": reason}), content_type
    host, port = url.removeprefix("http://").split(":")
    for header in (b"Authorization: Bearer \xff\xfe", b"X-Network-Key: \xff"):  # not UTF-8: was a 500
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /api/devices HTTP/1.1\r\nHost: x\r\n" + header + b"\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:80]


async def test_device_fields_keep_their_json_types(api: tuple[str, LiveSnapshot]) -> None:
    url, _ = api
    bearer = {"Authorization": f"Bearer {KEY}"}
    device = {"mac": "B8:27:EB:00:00:01", "ip": "192.0.2.5", "stamp": 1700000000, "name": "One", "log": "a,b"}
    status, body = await call(f"{url}/api/devices", "POST", json=device, headers=bearer)
    assert status == 200 and body[0] == {
        "mac": "B8:27:EB:00:00:01",  # as sent
        "ip": "192.0.2.5",
        "time stamp": "1700000000",  # a JSON number, as text
        "name": "One",
        "tz": "",
        "log": ["a", "b"],  # a v1 form's comma-separated string
    }
    for bad, reason in (  # these were turned into text and taken: 123 was a name, 5 a log
        ({"name": 123}, "name: not a string"),
        ({"ip": ["192.0.2.5"]}, "ip: not a string"),
        ({"stamp": True}, "stamp: not a string"),
        ({"log": 5}, "log: a list of timestamps"),
        ({"log": None}, "log: a list of timestamps"),
    ):
        status, body = await call(f"{url}/api/devices", "POST", json=device | bad, headers=bearer)
        assert status == 400 and body["error"].startswith(reason), (bad, body)


async def test_a_device_list_that_cannot_be_read_is_a_503(api: tuple[str, LiveSnapshot], tmp_path: Path) -> None:
    url, _ = api
    (tmp_path / "devices.json").write_text("{torn")
    device = {"mac": "b8:27:eb:00:00:01", "ip": "192.0.2.5", "stamp": time.time(), "name": "One"}
    bearer = {"Authorization": f"Bearer {KEY}"}
    status, body = await call(f"{url}/api/devices", "POST", json=device, headers=bearer)
    assert status == 503 and "is not a JSON list of devices" in body["error"]  # was a 400, as if the post were bad
    status, body = await call(f"{url}/api/devices", "POST", json=device | {"ip": "nope"}, headers=bearer)
    assert status == 400 and body["error"].startswith("ip:")  # a bad post is still the sender's fault


async def test_devices_need_the_network_key(api: tuple[str, LiveSnapshot]) -> None:
    url, _ = api
    device = {
        "mac": "b8:27:eb:00:00:01",
        "ip": "192.0.2.5",
        "stamp": time.time(),
        "name": "One",
        "tz": "UTC",
        "log": [],
    }
    assert (await call(f"{url}/api/devices"))[0] == 401
    assert (await call(f"{url}/api/devices", "POST", json=device))[0] == 401
    bearer = {"Authorization": f"Bearer {KEY}"}
    assert await call(f"{url}/api/devices", headers={"Authorization": "Bearer wrong"}) == (
        401,
        {"error": "the network key is missing or wrong"},
    )
    status, body = await call(f"{url}/api/devices", "POST", json=device | {"ip": "not an ip"}, headers=bearer)
    assert status == 400 and body["error"].startswith("ip:")
    status, body = await call(f"{url}/api/devices", "POST", data=b"{not json", headers=bearer)
    assert status == 400 and body["error"] == "the body is not JSON"
    status, body = await call(f"{url}/api/devices", "POST", json=device, headers=bearer)
    assert status == 200 and [d["name"] for d in body] == ["One"]
    status, body = await call(f"{url}/api/devices", headers={"X-Network-Key": KEY})
    assert status == 200 and body[0]["ip"] == "192.0.2.5"


async def test_the_openapi_document_matches_the_routes(api: tuple[str, LiveSnapshot]) -> None:
    url, _ = api
    status, doc = await call(f"{url}/api/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            async with aiohttp.ClientSession() as s, s.request(method.upper(), f"{url}{path}") as r:
                assert str(r.status) in operation["responses"], (method, path, r.status)
    for method in ("PUT", "DELETE"):
        async with aiohttp.ClientSession() as s, s.request(method, f"{url}/api/status") as r:
            assert r.status == 405  # only what the document names


async def test_system_publishes_the_identity_keys_only(data_dir: Path, tmp_path: Path) -> None:
    """A v1 local.json holds the node's secrets beside its identity: /api/system must answer the identity only
    (it answered the whole file, apiKey and dnsPassword included, to anyone)."""
    local = tmp_path / "local.json"
    secrets = {"apiKey": "the node's network key", "dnsPassword": "the DNS account's password"}
    local.write_text(json.dumps({"name": "Solar Node", "city": "Accra", "pvWatts": "100", **secrets,
                                 "httpPort": 80, "extra": {"nested": "kept out"}}))  # fmt: skip
    app = make_app(data_dir, node=Node(load_local_json(local)))
    async with Sidecar(app, "127.0.0.1", 0) as sidecar:
        status, body = await call(f"http://127.0.0.1:{sidecar.port}/api/system")
    assert status == 200
    text = json.dumps(body)
    assert not [v for v in secrets.values() if v in text], text
    assert body == {
        "name": "Solar Node",
        "description": None,
        "location": None,
        "city": "Accra",
        "country": None,
        "bgColor": None,
        "pvWatts": "100",
        "pvVolts": None,
        "wattage-scaler": 0.5,
    }


async def test_history_answers_wait_in_a_bounded_line(data_dir: Path) -> None:
    """One history answer is built at a time and READINGS_WAITING more wait for their turn; the next is a 503
    with Retry-After at once, and the waiting ones are answered once the worker is free."""
    api = JsonApi(DayCache(data_dir), live=None, devices=None, network_key=None, node=Node({}))
    app = web.Application()
    api.routes(app)
    query = "/api/readings?days=2&fields=PV voltage&format=columns"
    async with Sidecar(app, "127.0.0.1", 0) as sidecar:
        url = f"http://127.0.0.1:{sidecar.port}"
        await api.turns.slots.acquire()  # the test holds the only worker, as a long answer would
        held = True
        try:
            waiting = [asyncio.create_task(call(f"{url}{query}")) for _ in range(READINGS_WAITING)]
            async with asyncio.timeout(30):
                while api.turns.waiting < READINGS_WAITING:  # noqa: ASYNC110 (the line has no event to wait on)
                    await asyncio.sleep(0.01)
            async with aiohttp.ClientSession() as s, s.get(f"{url}{query}") as r:
                assert r.status == 503 and r.headers["Retry-After"] == "5"
                assert (await r.json())["error"].startswith("busy: ")
            assert not any(t.done() for t in waiting)
            api.turns.slots.release()
            held = False
            answers = await asyncio.gather(*waiting)
        finally:
            if held:
                api.turns.slots.release()
    assert {status for status, _ in answers} == {200}
    assert all(len(body["columns"][0]) == 3 for _, body in answers)  # the two days' three rows
    assert api.turns.waiting == 0 and not api.turns.slots.locked()
