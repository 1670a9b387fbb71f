"""``/api/v1/opendata.php`` and ``/api/v2/opendata.php`` over a real listener, byte for byte.

Every expected body below is what the original opendata.php files of Solar Protocol's main branch (9f148b04)
answered, run by php-cli 8.2 (``php -S``) on these very files, with only the dates and the time zone made the
test's own; bench/php_compare.py repeats the comparison on a week of data, 490 queries. Where the originals
leak (``server=../access`` reads local/access.json, the admin password hashes) the test asserts our difference.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from nutbridge.node import Node, local_zone
from nutbridge.peers.devices import DeviceList
from nutbridge.server.app import Sidecar, make_app
from tests.conftest import TEST_POLICY
from tests.helpers.days import TODAY, YESTERDAY

HEADER = (
    "datetime,PV voltage,PV current,PV power L,PV power H,battery voltage,battery current,battery power L,"
    "battery power H,load voltage,load current,load power,battery percentage"
)
ROW_Y = f"{YESTERDAY} 18:00:00.000001,19.1,1.0,19.1,0.0,13.1,1.5,19.65,0.0,13.1,0.2,2.62,0.9"
ROW_T1 = f"{TODAY} 07:40:12.694530,13.35,0.08,700.25,0.0,12.15,0.09,1.09,0.0,12.15,0.18,2.18,0.38"
ROW_T2 = f"{TODAY} 07:42:12.875627,13.33,0.07,2,0.0,12.09,0.08,0.96,0.0,12.09,0.23,2.78,0.36"
LOCAL = {"name": "Café Node", "description": "roof/terrace", "location": "Roof", "city": "New York",
         "country": "USA", "bgColor": "#ffcc00", "pvWatts": "120", "pvVolts": "18.5"}  # fmt: skip
DEVICES = [
    {"mac": "b8:27:eb:00:00:01", "ip": "203.0.113.7", "time stamp": "1765000000.5", "name": "Hong Kong",
     "tz": "Asia/Hong_Kong", "log": ["2026-12-06 10:00:00.000001"]},
    {"mac": "b8:27:eb:00:00:02", "ip": "203.0.113.8:8080", "time stamp": "1765000001.25", "name": "Dominica",
     "log": [""]},  # a seed-era entry: no tz
    {"mac": "dc:a6:32:00:00:03", "ip": "2001:db8::7", "time stamp": "1765000002", "name": "Sydney",
     "tz": "Australia/Sydney", "log": ["2026-12-05 09:00:00.5", "2026-12-04 09:00:00.5"]},
]  # fmt: skip


def php_row(line: str) -> str:
    return "[" + ",".join(f'"{c}"' for c in line.split(",")) + "]"


HEAD = php_row(HEADER)
ZONE = local_zone()
ESCAPED_ZONE = ZONE.replace("/", "\\/")
POE = '[["2026-12-06 10:00:00.000001"],[""],["2026-12-05 09:00:00.5","2026-12-04 09:00:00.5"]]'
STAMPS = '["1765000000.5","1765000001.25","1765000002"]'
DUMP = (f'{{"timezone":"{ZONE}","color":"#ffcc00","name":"Caf\\u00e9 Node","description":"roof/terrace",'
        '"location":"Roof","city":"New York","country":"USA","wattage-scaler":0.4166666666666667,"pvWatts":"120",'
        '"pvVolts":"18.5"}')  # fmt: skip
NETWORK_DUMP = (f'{{"name":["Hong Kong","Dominica","Sydney"],"poe":{POE},'
                f'"tz":["Asia/Hong_Kong",null,"Australia/Sydney"],"timestamp":{STAMPS}}}')  # fmt: skip
PEER_FILE = json.dumps([HEADER.split(","), ROW_Y.split(",")])  # as getRemoteData.py writes it (json.dumps)
V2_ROW_T2 = ",".join(
    f'"{k.replace(" ", "-")}":"{v}"' for k, v in zip(HEADER.split(","), ROW_T2.split(","), strict=True)
)

V1 = {
    "networkInfo=deviceList": '["Hong Kong","Dominica","Sydney"]',
    "networkInfo=tz": '["Asia\\/Hong_Kong",null,"Australia\\/Sydney"]',
    "networkInfo=poe": POE,
    "networkInfo=timestamp": STAMPS,
    "networkInfo=dump": NETWORK_DUMP,
    "networkInfo=other": "",
    "systemInfo=dump": DUMP,
    "systemInfo=wattage-scaler": "0.41666666666667",
    "server=0": PEER_FILE,
    "server=hongkong": PEER_FILE,
    "server=Hong%20Kong": PEER_FILE,
    "server=1": "[]",
    "server=2": "",
    "server=01": "",
    "server=nowhere": "",
    "server=all": f'{{"hongkong":[{HEAD},{php_row(ROW_Y)}],"dominica":"err","sydney":"err"}}',
    "server=1&value=PV-voltage": "[]",  # server is looked at before any other key
    "day=deviceList": "",  # opendata.php no longer hands out the raw list
    "value=scaled-wattage": "0.83333333333333",
    "value=PV-voltage": "13.33",
    "value=PV-voltage&duration=2": (
        f'{{"datetime":"PV voltage","{TODAY} 07:40:12.694530":"13.35","{TODAY} 07:42:12.875627":"13.33",'
        f'"{YESTERDAY} 18:00:00.000001":"19.1"}}'
    ),
    "line=len": "2",
    "line=9": "",
    "day=list": f'["tracerData{YESTERDAY}.csv","tracerData{TODAY}.csv"]',
    "day=2": f"[[{HEAD},{php_row(ROW_T1)},{php_row(ROW_T2)}],[{HEAD},{php_row(ROW_Y)}]]",
    "systemInfo=tz": ZONE,
    "systemInfo=name": "Café Node",
}
V2 = {
    "networkInfo=deviceList": '{"deviceList":["Hong Kong","Dominica","Sydney"]}',
    "networkInfo=tz": '{"tz":["Asia\\/Hong_Kong",null,"Australia\\/Sydney"]}',
    "networkInfo=poe": f'{{"poe":{POE}}}',
    "networkInfo=timestamp": f'{{"timestamp":{STAMPS}}}',
    "networkInfo=dump": f'{{"dump":{NETWORK_DUMP}}}',
    "systemInfo=dump": f'{{"dump":{DUMP}}}',
    "server=0": f'{{"header":{HEAD},"server":0,"data":[{php_row(ROW_Y)}],"timezone":"Asia\\/Hong_Kong"}}',
    "server=1": '{"header":null,"server":1,"data":[],"timezone":null}',
    "server=2": '{"header":null,"server":2,"data":[],"timezone":"Australia\\/Sydney"}',
    "server=all": (
        f'{{"header":null,"server":"all","data":{{"hongkong":[{php_row(ROW_Y)}],"dominica":[],"sydney":"err"}},'
        '"timezone":["Asia\\/Hong_Kong",null,"Australia\\/Sydney"]}'
    ),
    "server=hongkong": (
        f'{{"header":{HEAD},"server":"hongkong","data":[{php_row(ROW_Y)}],"timezone":"Asia\\/Hong_Kong"}}'
    ),
    "server=nowhere": '{"header":null,"server":"nowhere","data":[],"timezone":"Asia\\/Hong_Kong"}',
    "server=1&value=PV-voltage": '{"PV-voltage":"13.33"}',  # in v2 server comes last
    "day=deviceList": "",
    "value=scaled-wattage": '{"scaled-wattage":0.8333333333333334}',
    "value=PV-voltage": '{"PV-voltage":"13.33"}',
    "value=PV-voltage&duration=2": (
        f'{{"header":{{"datetime":"PV-voltage"}},"data":{{"{TODAY} 07:42:12.875627":"13.33",'
        f'"{TODAY} 07:40:12.694530":"13.35","{YESTERDAY} 18:00:00.000001":"19.1"}},"timezone":"{ZONE}"}}'
    ),
    "line=0": f'{{"0":{{{V2_ROW_T2}}},"timezone":"{ZONE}"}}',
    "line=len": '{"len":2}',
    "line=head": f'{{"head":{HEAD}}}',
    "line=9": "null",
    "day=2": (f'{{"header":{HEAD},"data":[{php_row(ROW_T2)},{php_row(ROW_T1)},{php_row(ROW_Y)}],"timezone":"{ZONE}"}}'),
    "day=list": f'{{"list":["tracerData{YESTERDAY}.csv","tracerData{TODAY}.csv"]}}',
    "systemInfo=tz": f'{{"tz":"{ZONE}"}}',
    "systemInfo=name": '{"name":"Caf\\u00e9 Node"}',
    "systemInfo=wattage-scaler": '{"wattage-scaler":0.4166666666666667}',
    "systemInfo=pvVoltage": '{"pvVoltage":"18.5"}',
}


@pytest.fixture
def node(tmp_path: Path, frozen_today: dt.date) -> Path:
    """A v1 node's files: two days of rows, local.json, the device list, getRemoteData.py's peer files; the
    routes take TODAY for today."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / f"tracerData{YESTERDAY}.csv").write_text(f"{HEADER}\n{ROW_Y}\n")
    (tmp_path / "data" / f"tracerData{TODAY}.csv").write_text(f"{HEADER}\n{ROW_T1}\n{ROW_T2}\n")
    (tmp_path / "local" / "data").mkdir(parents=True)
    (tmp_path / "local" / "local.json").write_text(json.dumps(LOCAL))
    (tmp_path / "local" / "access.json").write_text('{"admin":"$2y$10$the.admin.password.hash"}')
    (tmp_path / "local" / "data" / "hongkong.json").write_text(PEER_FILE)
    (tmp_path / "local" / "data" / "dominica.json").write_text("[]")
    (tmp_path / "deviceList.json").write_text(json.dumps(DEVICES, separators=(",", ":")))
    return tmp_path


@pytest.fixture
async def base(node: Path) -> AsyncIterator[str]:
    devices = DeviceList(node / "deviceList.json", policy=TEST_POLICY)
    app = make_app(node / "data", devices=devices, network_key="k" * 16, node=Node(LOCAL),
                   peer_data=node / "local" / "data")  # fmt: skip
    async with Sidecar(app, "127.0.0.1", 0) as sidecar:
        yield f"http://127.0.0.1:{sidecar.port}/api"


async def get(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
        return (await response.read()).decode()


@pytest.mark.parametrize(("query", "expected"), V1.items())
async def test_v1_answers_as_the_original(base: str, query: str, expected: str) -> None:
    assert await get(f"{base}/v1/opendata.php?{query}") == expected


@pytest.mark.parametrize(("query", "expected"), V2.items())
async def test_v2_answers_as_the_original(base: str, query: str, expected: str) -> None:
    assert await get(f"{base}/v2/opendata.php?{query}") == expected


@pytest.mark.parametrize("name", ["../access", "..%2Faccess", "..%2F..%2Flocal%2Faccess", "%2Fetc%2Fpasswd"])
async def test_server_reads_only_listed_nodes_files(base: str, name: str) -> None:
    """The original reads /home/pi/local/data/<anything>.json: ../access is the admin password hashes."""
    assert await get(f"{base}/v1/opendata.php?server={name}") == ""
    v2 = json.loads(await get(f"{base}/v2/opendata.php?server={name}"))
    assert v2["header"] is None and v2["data"] == []


async def test_a_peer_file_over_the_cap_is_not_read(base: str, node: Path) -> None:
    (node / "local" / "data" / "hongkong.json").write_bytes(b"[" + b" " * (5 * 1024 * 1024) + b"]")
    assert await get(f"{base}/v1/opendata.php?server=0") == ""
    assert json.loads(await get(f"{base}/v1/opendata.php?server=all"))["hongkong"] == "err"


async def test_getremotedata_reads_day_4_as_v1_writes_it(base: str) -> None:
    """getRemoteData.py asks every node for day=4 and takes each file apart: header row first, rows oldest first."""
    days = json.loads(await get(f"{base}/v1/opendata.php?day=4"))
    assert [len(d) for d in days] == [3, 2]
    assert days[0][0] == HEADER.split(",") and days[0][-1] == ROW_T2.split(",")


async def test_server_all_reads_a_bounded_total(base: str, node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Peers' answers decide how big getRemoteData.py's files are: server=all stops reading past a total."""
    from nutbridge.server import network_files

    (node / "local" / "data" / "dominica.json").write_text(PEER_FILE)
    monkeypatch.setattr(network_files, "MAX_ALL", len(PEER_FILE) + 10)
    answer = json.loads(await get(f"{base}/v1/opendata.php?server=all"))
    assert answer["hongkong"][1] == ROW_Y.split(",") and answer["dominica"] == answer["sydney"] == "err"
