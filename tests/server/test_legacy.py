"""The Solar Protocol v1 route over a real listener: status, Content-Type and body, byte for byte, odd queries too.

Expected bodies follow the original's main branch (shared/reference/solar-protocol.md §2) on PHP 8; each one
was also checked by hand against the original chargecontroller.php run by php-cli 8.2 on the same files (the
original is not part of this repository). The deliberate differences (only real log files are served, no
deviceList, no 500) are asserted as such.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from nutbridge.datalog.reader import SETTLED_NS, DayCache
from nutbridge.errors import ConfigError
from nutbridge.node import Node
from nutbridge.server.app import Sidecar, make_app, tls_context
from nutbridge.server.legacy import VALUE_NOT_FOUND
from tests.conftest import need
from tests.helpers import free_port
from tests.helpers.days import HEADER, ROW_T1, ROW_T2, ROW_Y1, T1, T2, TODAY, Y1, YESTERDAY


@pytest.fixture
async def api(data_dir: Path) -> AsyncIterator[str]:
    async with Sidecar(make_app(data_dir), "127.0.0.1", 0) as sidecar:
        yield f"http://127.0.0.1:{sidecar.port}/api/v1/chargecontroller.php"


async def get(url: str, query: str = "", method: str = "GET") -> str:
    async with aiohttp.ClientSession() as session, session.request(method, f"{url}?{query}") as response:
        assert response.status == 200, query
        assert response.headers["Content-Type"] == "text/html; charset=UTF-8", query
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        return (await response.read()).decode()


def obj(row: str) -> str:
    """The JSON object PHP makes of a row: header → cell."""
    pairs = zip(HEADER.split(","), row.split(","), strict=True)
    return "{" + ",".join(f'"{k}":"{v}"' for k, v in pairs) + "}"


def arr(line: str) -> str:
    return "[" + ",".join(f'"{c}"' for c in line.split(",")) + "]"


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ("value=PV-voltage", "13.33"),  # today's newest row, plain text
        ("value=datetime", T2),
        ("value=load-power", "2.78"),  # the load registers: v1 logged the undocumented gap
        ("value=battery-percentage", "0.36"),
        ("value=charge-current", ""),  # allowed, but no such column: empty
        ("value=battery-current", VALUE_NOT_FOUND),  # a real column, but not on the allow-list
        ("value=", VALUE_NOT_FOUND),
        ("value=scaled-wattage", "0"),  # PV power L x 1 (no pvWatts), echoed as PHP does: 0.0 * 1 is "0"
        ("value=PV-voltage&duration=1", f'{{"datetime":"PV voltage","{T1}":"13.35","{T2}":"13.33"}}'),
        (
            "value=PV-voltage&duration=2",  # files, newest first, each with its rows ascending
            f'{{"datetime":"PV voltage","{T1}":"13.35","{T2}":"13.33","{Y1}":"19.1"}}',
        ),
        ("value=PV-voltage&duration=30", f'{{"datetime":"PV voltage","{T1}":"13.35","{T2}":"13.33","{Y1}":"19.1"}}'),
        ("value=scaled-wattage&duration=1", f'{{"datetime":"PV power L","{T1}":"700.25","{T2}":"0.0"}}'),  # unscaled
        ("value=charge-current&duration=1", f'{{"datetime":null,"{T1}":null,"{T2}":null}}'),
        ("value=PV-voltage&duration=-1", "[]"),
        ("value=PV-voltage&duration=abc", "13.33"),  # intval 0: the single value
        ("line=len", "2"),
        ("line=head", arr(HEADER)),
        ("line=0", obj(ROW_T2)),  # 0 is the newest row
        ("line=1", obj(ROW_T1)),
        ("line=2", obj(HEADER)),  # N == len: the header mapped onto itself
        ("line=3", ""),
        ("line=-1", ""),
        ("line=abc", ""),  # PHP 8 compares "abc" with "3" as strings
        ("line=1abc", obj(ROW_T1)),  # leading-numeric: passes the string comparison, counts as 1
        ("line=1.5", obj(HEADER)),  # a fractional index, truncated: 3 - 1 - 1.5 → 0
        ("day=list", f'["tracerData{YESTERDAY}.csv","tracerData{TODAY}.csv"]'),  # real log files only
        ("day=len", "2"),
        ("day=1", f"[[{arr(HEADER)},{arr(ROW_T1)},{arr(ROW_T2)}]]"),
        ("day=2abc", f"[[{arr(HEADER)},{arr(ROW_T1)},{arr(ROW_T2)}],[{arr(HEADER)},{arr(ROW_Y1)}]]"),
        ("day=8", ""),
        (f"day=tracerData{YESTERDAY}", f"[{arr(HEADER)},{arr(ROW_Y1)}]"),
        ("day=tracerData1999-01-01", "false"),  # no such file
        ("day=..%2FtracerData%2F..%2F..%2Fsecret", "false"),  # v1 reads any path containing "tracerData"
        ("day=tracerData%00", "false"),  # a NUL byte: PHP answers 500
        ("day=deviceList", ""),  # v1 hands out every peer's IP and MAC here, unauthenticated
        ("networkInfo=deviceList", "[]"),
        ("value=PV-voltage&line=0&day=list", "13.33"),  # the first key in v1's order wins
        ("line=0&value=PV-voltage", "13.33"),
        ("", ""),
        ("nothing=here", ""),
        # PHP turns key[]= into an array: compared, intval'ed and tested as PHP 8 does
        ("value[]=PV-voltage", VALUE_NOT_FOUND),
        ("value=PV-voltage&duration[]=5", f'{{"datetime":"PV voltage","{T1}":"13.35","{T2}":"13.33"}}'),
        ("day[]=x", f"[[{arr(HEADER)},{arr(ROW_T1)},{arr(ROW_T2)}]]"),
        ("line=0&line[]=1", ""),
        ("line[]=1&line=0", obj(ROW_T2)),  # a later plain key replaces the array
        # found by bench/php_compare.py against the original on php-cli 8.2, then checked on these files:
        # intval() takes a fraction and an exponent, and INF is 0
        ("value=PV-voltage&duration=0.5e1", f'{{"datetime":"PV voltage","{T1}":"13.35","{T2}":"13.33","{Y1}":"19.1"}}'),
        ("value=PV-voltage&duration=1e999", "13.33"),
        ("day=0.1e1", f"[[{arr(HEADER)},{arr(ROW_T1)},{arr(ROW_T2)}]]"),
        ("day=1e1", ""),
        # a leading-numeric line passes the string comparison: an offset with no row is all nulls (was a 500),
        # and -INF as an offset is 0, the header
        ("line=1000abc", "{" + ",".join(f'"{k}":null' for k in HEADER.split(",")) + "}"),
        ("line=1e999abc", obj(HEADER)),
        # names as PHP registers them: leading spaces dropped, cut at NUL, an unclosed [ or a dot is _
        ("%20value=PV-voltage", "13.33"),
        ("value%00x=PV-voltage", "13.33"),
        ("value[=PV-voltage", ""),
        ("value.x=PV-voltage", ""),
    ],
)
async def test_answers_byte_for_byte(api: str, query: str, body: str) -> None:
    assert await get(api, query) == body


@pytest.mark.parametrize(
    ("text", "value"),  # each checked with php-cli 8.2's intval()
    [("1e1", 10), ("0.5e1", 5), (".5e1", 5), ("3.9", 3), (" 3", 3), ("3 ", 3), ("\n2", 2), ("+3", 3), ("1e2abc", 100),
     ("1.5e", 1), ("0x1A", 0), ("abc", 0), ("", 0), ("1e999", 0), ("-1e999", 0),
     ("99999999999999999999", 2**63 - 1), ("-99999999999999999999", -(2**63)), ("1e19", 2**63 - 1)],
)  # fmt: skip
def test_intval_as_php(text: str, value: int) -> None:
    from nutbridge.server import php

    assert php.intval(text) == value


@pytest.mark.parametrize(
    ("offset", "key"),  # each checked with php-cli 8.2: array_keys() of [$offset => 1]
    [(-0.5, 0), (1.9, 1), (float("inf"), 0), (float("-inf"), 0), (float("nan"), 0), (-1.8446744073709552e19, 0),
     (1.8446744073709556e19, 4096), (-1e21, -3875820019684212736), (1e19, -8446744073709551616),
     (9.223372036854776e18, -(2**63))],
)  # fmt: skip
def test_float_offsets_as_php(offset: float, key: int) -> None:
    from nutbridge.server import php

    assert php.array_key(offset) == key


DEEP = "[x]" * 64  # as deep as PHP's max_input_nesting_level lets a name go


@pytest.mark.parametrize(
    ("name", "php_get"),  # each answered by PHP 8.2 (php -S, json_encode($_GET)) for the query a=0&NAME=1&b=2
    [("a.b[c.d", '{"a":"0","a_b_c_d":"1","b":"2"}'), ("a[b.c", '{"a":"0","a_b_c":"1","b":"2"}'),
     ("  a b", '{"a":"0","a_b":"1","b":"2"}'), ("a\0x", '{"a":"1","b":"2"}'), ("a[x]y", '{"a":{"x":"1"},"b":"2"}'),
     ("[x]", '{"a":"0","b":"2"}'), ("a[", '{"a":"0","a_":"1","b":"2"}'), ("a]", '{"a":"0","a]":"1","b":"2"}'),
     (".a", '{"a":"0","_a":"1","b":"2"}'), ("a[x][y]", '{"a":{"x":{"y":"1"}},"b":"2"}'),
     ("a[x]]", '{"a":{"x":"1"},"b":"2"}'), ("a[[x]", '{"a":{"[x":"1"},"b":"2"}'),
     (f"a{DEEP}y[x]", '{"a":' + '{"x":' * 64 + '"1"' + "}" * 64 + ',"b":"2"}'),
     (f"a{DEEP}[x]", '{"b":"2"}'), (f"a{DEEP}[", '{"b":"2"}')],
)  # fmt: skip
def test_get_names_as_php(name: str, php_get: str) -> None:
    """The names PHP registers and which of them are arrays, what the routes dispatch on (``value[x]y=`` makes
    ``value`` an array; a name nested too deep unsets its variable). An array's keys and nesting are not kept,
    a deliberate difference (no route reads into one): here it is the list of its values."""
    from nutbridge.server import php

    def seen(params: dict[str, Any]) -> dict[str, str | None]:
        return {key: None if isinstance(value, dict | list) else value for key, value in params.items()}

    params = php.get_params([("a", "0"), (name, "1"), ("b", "2")])
    assert seen(params) == seen(json.loads(php_get))
    assert all(value == ["1"] for value in params.values() if isinstance(value, list))


async def test_only_get_is_answered(api: str) -> None:
    assert await get(api, "value=PV-voltage", method="POST") == ""


async def test_time_zone_is_the_systems(api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    zone = await get(api, "systemInfo=tz")
    assert (zone and "/" in zone) or zone == "UTC"
    assert await get(api, "systemInfo=wattage-scaler") == "1"


async def test_a_growing_day_file_is_read_again_and_otherwise_cached(api: str, data_dir: Path) -> None:
    assert await get(api, "line=len") == "2"
    week = await get(api, "value=PV-voltage&duration=7")
    assert await get(api, "value=PV-voltage&duration=7") == week  # the encoded answer, from the memo
    t3 = f"{TODAY} 07:44:12.000000"
    with (data_dir / f"tracerData{TODAY}.csv").open("a") as f:
        f.write(f"{t3},14.0,0.07,0.0,0.0,12.09,0.08,0.96,0.0,12.09,0.23,2.78,0.36\n")
    assert await get(api, "value=datetime") == t3
    assert f'"{t3}":"14.0"' in await get(api, "value=PV-voltage&duration=7")  # the memo saw the file grow
    with (data_dir / f"tracerData{TODAY}.csv").open("a") as f:
        f.write(f"{TODAY} 07:46:12.000000,14.1,0.0")  # a torn line: ignored, not served
    assert await get(api, "line=len") == "3"


async def test_a_new_day_file_is_served_by_the_next_request(data_dir: Path) -> None:
    """With the folder's listing kept (as once it has settled), a day file made between two requests, and a row
    appended to it, are in the next answer, the memoised week too."""
    cache = DayCache(data_dir, clock=lambda: time.time_ns() + 2 * SETTLED_NS)
    async with Sidecar(make_app(data_dir, cache=cache), "127.0.0.1", 0) as sidecar:
        api = f"http://127.0.0.1:{sidecar.port}/api/v1/chargecontroller.php"
        before = await get(api, "value=PV-voltage&duration=7")
        assert await get(api, "value=PV-voltage&duration=7") == before
        assert cache._listed is not None  # kept: the requests only stat the folder
        await asyncio.sleep(0.05)  # past the file system's clock tick (no timing asserted)
        tomorrow = data_dir / f"tracerData{TODAY + dt.timedelta(days=1)}.csv"
        tomorrow.write_text(f"{HEADER}\n{TODAY + dt.timedelta(days=1)} 00:00:10.000000,15.5{ROW_T1[len(T1) + 6 :]}\n")
        assert json.loads(await get(api, "day=list"))[-1] == tomorrow.name
        week = json.loads(await get(api, "value=PV-voltage&duration=7"))
        assert week[f"{TODAY + dt.timedelta(days=1)} 00:00:10.000000"] == "15.5"
        with tomorrow.open("a") as f:
            f.write(f"{TODAY + dt.timedelta(days=1)} 00:02:10.000000,15.6{ROW_T1[len(T1) + 6 :]}\n")
        week = json.loads(await get(api, "value=PV-voltage&duration=7"))
        assert week[f"{TODAY + dt.timedelta(days=1)} 00:02:10.000000"] == "15.6"


def test_no_poll_serves_a_folder_and_stops_on_sigterm(data_dir: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nutbridge",
            "--no-poll",
            "--data-dir",
            str(data_dir),
            "--api-listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        body = None
        deadline = time.monotonic() + 30
        while body is None and time.monotonic() < deadline:
            # the daemon's today is the clock's (another process): past midnight, today's rows are in its file
            today = data_dir / f"tracerData{dt.date.today()}.csv"
            if not today.exists():
                shutil.copyfile(data_dir / f"tracerData{TODAY}.csv", today)
            body = fetch(port, "value=PV-voltage")
            time.sleep(0.1)
        assert body == "13.33"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "serving" in err and "Traceback" not in err


def raw(port: int, path: str) -> str:
    """One whole HTTP answer, status line first."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        return s.makefile("rb").read().decode()


def fetch(port: int, query: str) -> str | None:
    """The body of one request with a bare socket, or None while nothing listens."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET /api/v1/chargecontroller.php?{query} HTTP/1.0\r\n\r\n".encode())
            return s.makefile("rb").read().decode().split("\r\n\r\n", 1)[1]
    except OSError:
        return None


def test_the_polling_daemon_serves_its_own_log(tmp_path: Path, port_file: Path) -> None:
    port = free_port()
    before = dt.date.today()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "nutbridge", "--simulate", "--port-file", f"{port_file}"),
            *("--poll-interval", "0.3", "--data-dir", f"{tmp_path / 'log'}", "--api-listen", f"127.0.0.1:{port}"),
            *("--flush-interval", "0"),  # each row in the file at once: the test reads them back at once
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        rows = 0
        while rows < 3 and time.monotonic() < deadline:
            body = fetch(port, "line=len")
            rows = int(body) if body and body.isdigit() else 0
            time.sleep(0.1)
        assert rows >= 3, "the API never showed the rows the polls logged"
        newest = fetch(port, "value=datetime")
        assert newest and newest[:10] in {before.isoformat(), dt.date.today().isoformat()}  # midnight may pass
        status = json.loads(raw(port, "/api/status").split("\r\n\r\n", 1)[1])
        assert status["comms"] == "ok" and status["variables"]["ups.status"].startswith(("OL", "OB"))
        assert raw(port, "/health").split(" ", 2)[1] == "200"
        assert "ups.status" in port_file.read_text()  # serving never got in the way of the port file
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err


LOCAL_JSON = {
    "name": "Caddie Node",
    "description": "A solar server on a roof",
    "location": "Roof",
    "city": "New York",
    "country": "USA",
    "bgColor": "#ffcc00",
    "pvWatts": 100,
    "pvVolts": 18.5,
    "extra": True,
}


@pytest.fixture
async def node_api(data_dir: Path) -> AsyncIterator[str]:
    app = make_app(data_dir, node=Node(LOCAL_JSON))
    async with Sidecar(app, "127.0.0.1", 0) as sidecar:
        yield f"http://127.0.0.1:{sidecar.port}/api/v1/chargecontroller.php"


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ("systemInfo=name", "Caddie Node"),
        ("systemInfo=color", "#ffcc00"),
        ("systemInfo=city", "New York"),
        ("systemInfo=pvWatts", "100"),
        ("systemInfo=pvVoltage", "18.5"),
        ("systemInfo=wattage-scaler", "0.5"),  # 50 W / 100 W
        ("systemInfo=nope", ""),
        ("value=scaled-wattage", "0"),  # "0.0" x 0.5, echoed as PHP does
        ("value=scaled-wattage&duration=1", f'{{"datetime":"PV power L","{T1}":"700.25","{T2}":"0.0"}}'),
    ],
)
async def test_system_info_answers_from_local_json(node_api: str, query: str, body: str) -> None:
    assert await get(node_api, query) == body


async def test_system_info_dump(node_api: str) -> None:
    zone = await get(node_api, "systemInfo=tz")
    assert await get(node_api, "systemInfo=dump") == (
        f'{{"timezone":"{zone.replace("/", chr(92) + "/")}","color":"#ffcc00","name":"Caddie Node",'
        '"description":"A solar server on a roof","location":"Roof","city":"New York","country":"USA",'
        '"wattage-scaler":0.5,"pvWatts":100,"pvVolts":18.5}'
    )


@pytest.mark.parametrize(("watts", "scaler"), [("", ""), ("100", "0.5"), (0, ""), (50, "1")])
def test_wattage_scaler_edge_cases(watts: object, scaler: str) -> None:
    from nutbridge.server import php

    assert php.echo(Node({"pvWatts": watts}).wattage_scaler()) == scaler
    assert php.echo(Node({}).wattage_scaler()) == "1"


async def test_https_when_a_certificate_is_set(data_dir: Path, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    async with Sidecar(make_app(data_dir), "127.0.0.1", 0, tls=tls_context(cert, key)) as sidecar:
        assert str(sidecar).startswith("API on https://")
        trust = ssl.create_default_context(cafile=str(cert))
        url = f"https://127.0.0.1:{sidecar.port}/api/v1/chargecontroller.php?value=PV-voltage"
        async with aiohttp.ClientSession() as session:
            async with session.get(url, ssl=trust) as response:
                assert response.status == 200 and await response.text() == "13.33"
            with pytest.raises(aiohttp.ClientError):  # plain HTTP to the TLS port gets nothing
                async with session.get(url.replace("https:", "http:")) as response:
                    await response.read()


def test_a_bad_certificate_is_a_clear_error(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, _ = certificate
    with pytest.raises(ConfigError, match="cannot load the TLS certificate"):
        tls_context(cert, tmp_path / "missing-key.pem")


@pytest.mark.parametrize("client", ["solar_client.py", "solar_client.js"])
async def test_the_client_examples_work(api: str, client: str) -> None:
    examples = Path(__file__).parents[2] / "examples"
    program = [sys.executable] if client.endswith(".py") else ["node"]
    if client.endswith(".js"):
        need(shutil.which("node") is not None, "Node.js 18 or newer (Debian's nodejs), for the JavaScript example")
    base = api.split("/api/", maxsplit=1)[0]
    proc = await asyncio.create_subprocess_exec(
        *program, str(examples / client), base, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert f"newest row {T2}: PV 13.33 V, battery 0.36" in out.decode()
    assert "today: 2 PV voltage readings" in out.decode()
