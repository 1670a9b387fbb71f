"""``nutbridge capture`` run as a user runs it, a real process against real devices on loopback: the simulator and
a Tracer over a real pymodbus server, a fake Enphase gateway over real HTTPS answering the recorded answers of
test-fixtures/capture/envoy/ (a serial, an e-mail, a MAC and a site id among them) with a token cache prepared so
no cloud is asked, and a fake pyPowerwall proxy. Every byte written is searched for every secret."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tarfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest
from aiohttp import web

from nutbridge.capture.bundle import file_name
from nutbridge.devices.modbus_map import Table
from nutbridge.devices.tracer.source import INFO_PLAN, POLL_PLAN
from nutbridge.redact import Redactor
from nutbridge.server.app import Sidecar, tls_context
from nutbridge.simulator.server import SimulatedTracer
from tests.helpers.family import KIND, station

ROOT = Path(__file__).parent.parent.parent
GATEWAY = ROOT / "test-fixtures" / "capture" / "envoy"  # answers by pyenphase's file names
PROXY = ROOT / "test-fixtures" / "powerwall"
SERIAL, BATTERY, ENPOWER = "202400000001", "482211001234", "482212005678"
EMAIL, MAC, SITE_ID = "owner@example.org", "00:1D:C0:A1:B2:C3", "4815162342"
USER, PASSWORD = "me@example.org", "secret pw"
TOKEN = jwt.encode({"exp": int(time.time() + 86400 * 30), "aud": SERIAL}, "a key for the test's tokens, 32 bytes+")


async def capture(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``nutbridge capture ARGS`` in ``cwd``: its exit status, stdout and stderr. Async, so the devices this
    test serves keep answering while it runs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nutbridge", "capture", *args, cwd=cwd, env={**os.environ, **(env or {})},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def config(folder: Path, source: str, name: str = "nutbridge.toml") -> Path:
    """A daemon's configuration with ``source`` and a port file that exists (the capture must leave it alone);
    0600, as it may hold a password."""
    (folder / "solar.dev").write_text("# by hand\nbattery.charge.low: 20\n")
    path = folder / name
    path.write_text(f'{source}\n[nut]\nport_file = "solar.dev"\n')
    path.chmod(0o600)
    return path


def output_files(out: Path) -> dict[str, bytes]:
    """Every file of a capture folder or archive, by name within it."""
    if out.is_dir():
        return {p.name: p.read_bytes() for p in out.iterdir()}
    with tarfile.open(out) as tar:
        files = {}
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            if handle is not None:
                files[Path(member.name).name] = handle.read()
        return files


def assert_no_secret(texts: list[bytes], secrets: list[str]) -> None:
    for data in texts:
        for secret in secrets:
            assert secret.lower().encode() not in data.lower(), f"{secret!r} leaked"


def assert_port_file_untouched(folder: Path) -> None:
    assert (folder / "solar.dev").read_text() == "# by hand\nbattery.charge.low: 20\n"
    assert not (folder / "solar.dev-nocomms").exists()


# --- Tracer and the simulator --------------------------------------------------------------------------------


def assert_register_blocks(registers: dict[str, object]) -> None:
    """Every block the Tracer source reads at start-up and per poll, as {address: [words]} per table."""
    for req in (*INFO_PLAN, *POLL_PLAN):
        table = registers["input_registers" if req.table == Table.INPUT else "holding_registers"]
        assert isinstance(table, dict)
        words = table[f"0x{req.address:04X}"]
        assert len(words) == req.count and all(isinstance(w, int) and 0 <= w < 65536 for w in words)


async def test_the_simulator_is_captured_and_nothing_needs_redacting(tmp_path: Path) -> None:
    path = config(tmp_path, '[source]\nkind = "simulator"\nstart = "12:00"')
    status, out, err = await capture("-c", str(path), "-o", "cap", cwd=tmp_path)
    assert status == 0, err
    registers = json.loads((tmp_path / "cap" / "registers.json").read_text())
    assert registers["device"]["device_id"] == 1 and registers["device"]["model"]
    assert_register_blocks(registers)
    about = json.loads((tmp_path / "cap" / "capture.json").read_text())
    assert about["source"] == "simulator" and about["nutbridge"] and about["time"]
    assert about["redacted"].startswith("a Tracer's registers hold") and about["problems"] == []
    assert "redacted: nothing (a Tracer's registers hold" in out and "registers.json" in out
    assert_port_file_untouched(tmp_path)


async def test_a_tracer_over_modbus_tcp_as_an_archive(tmp_path: Path, sim: SimulatedTracer) -> None:
    path = config(tmp_path, f'[source]\nkind = "tracer"\nurl = "tcp://127.0.0.1:{sim.port}"')
    status, _, err = await capture("-c", str(path), "-o", "tracer.tar.gz", cwd=tmp_path)
    assert status == 0, err
    with tarfile.open(tmp_path / "tracer.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["tracer", "tracer/capture.json", "tracer/registers.json"]
        assert all(m.uid == m.gid == 0 and m.uname == m.gname == "" for m in tar.getmembers())  # no login names
    registers = json.loads(output_files(tmp_path / "tracer.tar.gz")["registers.json"])
    assert_register_blocks(registers)
    assert registers["input_registers"]["0x311A"] == [70]  # the simulator's charge, as read
    assert_port_file_untouched(tmp_path)


async def test_a_tracer_answering_across_the_gaps_is_captured_as_it_is_read(tmp_path: Path) -> None:
    async with SimulatedTracer(lenient=True) as lenient:  # coalesce = auto by default: its probe passes
        port = await lenient.start_tcp()
        path = config(tmp_path, f'[source]\nkind = "tracer"\nurl = "tcp://127.0.0.1:{port}"')
        status, _, err = await capture("-c", str(path), "-o", "cap", cwd=tmp_path)
    assert status == 0, err
    polled = json.loads((tmp_path / "cap" / "registers.json").read_text())["input_registers"]
    assert {a: len(polled[a]) for a in ("0x3100", "0x3200", "0x3302")} == {"0x3100": 27, "0x3200": 3, "0x3302": 27}
    assert polled["0x3100"][0x311A - 0x3100] == 70 and polled["0x3100"][8:12] == [0, 0, 0, 0]  # SOC; the gap
    assert "0x310C" not in polled and "0x331A" not in polled  # within the coalesced reads


async def test_nothing_answering_saves_nothing_and_an_existing_output_is_kept(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = config(tmp_path, f'[source]\nkind = "tracer"\nurl = "tcp://127.0.0.1:{port}"\ntimeout = 0.2')
    status, _, err = await capture("-c", str(path), "-o", "cap", cwd=tmp_path)
    assert status == 1 and "nothing answered, nothing saved" in err and not (tmp_path / "cap").exists()
    (tmp_path / "cap").mkdir()
    status, _, err = await capture("-c", str(path), "-o", "cap", cwd=tmp_path)
    assert status == 1 and "exists" in err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".nutbridge-capture")] == []


async def test_a_bad_configuration_exits_78_and_no_ups_is_a_usage_error(tmp_path: Path) -> None:
    path = config(tmp_path, '[source]\nkind = "tracer"\nurl = "bogus://x"')
    status, _, err = await capture("-c", str(path), cwd=tmp_path)
    assert status == 78 and "source.url" in err
    status, _, err = await capture(cwd=tmp_path)
    assert status == 2 and "name the UPS" in err


# --- the Enphase gateway --------------------------------------------------------------------------------------


@pytest.fixture
async def gateway(certificate: tuple[Path, Path]) -> AsyncIterator[tuple[str, dict[str, int]]]:
    """A gateway over HTTPS answering the recorded files to the prepared token only; (host, requests by path)."""
    asked: dict[str, int] = {}

    async def answer(request: web.Request) -> web.Response:
        path = request.path_qs
        asked[path] = asked.get(path, 0) + 1
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401)
        recorded = GATEWAY / file_name(path)
        if not recorded.is_file():
            return web.Response(status=404, text="not here")
        kind = "text/xml" if recorded.name.startswith("info") else "application/json"
        return web.Response(body=recorded.read_bytes(), content_type=kind)

    app = web.Application()
    app.router.add_get("/{path:.*}", answer)
    async with Sidecar(app, "127.0.0.1", 0, tls=tls_context(*certificate)) as server:
        yield f"127.0.0.1:{server.port}", asked


def envoy_config(folder: Path, host: str, token: str = TOKEN) -> Path:
    """A gateway's configuration under NUT_CONFPATH, with the daemon's token cache already holding a token; the
    cloud's URLs lead nowhere, so a login would fail the capture."""
    state = folder / "state"
    state.mkdir(mode=0o700)
    (state / "enphase.token").write_text(token)
    (state / "enphase.token").chmod(0o600)
    source = (f'[source]\nkind = "envoy"\nhost = "{host}"\nserial = "{SERIAL}"\nusername = "{USER}"\n'
              f'password = "{PASSWORD}"\nstate_dir = "state"\nlogin_url = "https://127.0.0.1:9/login/login.json?"\n'
              'token_url = "https://127.0.0.1:9/tokens"')  # fmt: skip
    return config(folder, source, name="nutbridge-solar.toml")


async def test_an_enphase_gateway_is_captured_in_pyenphases_layout_with_every_secret_replaced(
    tmp_path: Path, gateway: tuple[str, dict[str, int]]
) -> None:
    host, asked = gateway
    envoy_config(tmp_path, host)
    work = tmp_path / "work"
    work.mkdir()
    status, out, err = await capture("solar", cwd=work, env={"NUT_CONFPATH": str(tmp_path)})
    assert status == 0, err
    [folder] = work.iterdir()
    assert re.fullmatch(r"nutbridge-capture-solar-\d{8}-\d{6}", folder.name)
    files = output_files(folder)
    # every recorded answer was asked once, and saved under its own name
    for recorded in GATEWAY.iterdir():
        assert recorded.name in files, recorded.name
        assert json.loads(files[f"{recorded.name}_log.json"]) == {
            "headers": {"content-type": "text/xml" if recorded.name.startswith("info") else "application/json"},
            "code": 200,
        }
    assert asked["/production.json?details=1"] == 1 and asked["/ivp/ensemble/relay"] == 1
    assert all(n == 1 for n in asked.values()), asked  # nothing asked twice: the extras skip what the poll read
    # raw: an answer without secrets is byte for byte the gateway's
    for name in ("ivp_ensemble_relay", "ivp_meters_reports", "api_v1_production", "production.json"):
        assert files[name] == (GATEWAY / name).read_bytes(), name
    assert files["ivp_meters_readings"] == (GATEWAY / "ivp_meters_readings").read_bytes()
    # stable placeholders, in the value's shape
    assert b"<sn>900000000001</sn>" in files["info"] and b"<sn>900000000001</sn>" in files["info.xml"]
    assert b"<software>D8.2.4378</software>" in files["info.xml"]
    inventory = json.loads(files["ivp_ensemble_inventory"])
    battery, enpower = inventory[0]["devices"][0], inventory[1]["devices"][0]
    assert re.fullmatch(r"9\d{11}", battery["serial_num"]) and re.fullmatch(r"9\d{11}", enpower["serial_num"])
    assert battery["serial_num"] != enpower["serial_num"] and battery["percentFull"] == 87
    assert (
        enpower["note"] == "paired with gateway 900000000001 over bridge 00:00:5e:00:53:01; installer user2@example.com"
    )
    meters = json.loads(files["ivp_meters"])
    assert meters[2]["serialNumber"] == battery["serial_num"]  # the same serial, the same placeholder
    assert meters[0]["serialNumber"] != meters[1]["serialNumber"] and meters[0]["eid"] == 704643328
    live = json.loads(files["ivp_livedata_status"])  # a numeric id stays a JSON number
    assert isinstance(live["connection"]["site_id"], int) and live["meters"]["soc"] == 87
    # what was taken, and what was not answered
    about = json.loads(files["capture.json"])
    assert about["source"] == "envoy" and about["firmware"] == "D8.2.4378" and about["problems"] == []
    assert about["endpoints"]["/ivp/ensemble/status"] == {"status": 404, "file": None}
    assert about["endpoints"]["/production.json?details=1"] == {"status": 200, "file": "production.json"}
    assert about["redacted"]["serial"]["values"] == 5  # gateway, two meters, battery, enpower
    assert about["redacted"]["email"] == {"values": 2, "places": 1}  # the user name (found nowhere), the note's
    assert about["redacted"]["mac"] == {"values": 1, "places": 1} and about["redacted"]["id"]["values"] == 1
    assert "serial numbers 5" in out and "e-mail addresses 2" in out and "never written" in out
    assert_no_secret([*files.values(), out.encode(), err.encode()],
                     [TOKEN, PASSWORD, USER, SERIAL, BATTERY, ENPOWER, EMAIL, MAC, SITE_ID])  # fmt: skip
    assert_port_file_untouched(tmp_path)


async def test_a_refused_token_is_captured_as_401s_and_the_log_lines_hide_the_serial(
    tmp_path: Path, gateway: tuple[str, dict[str, int]]
) -> None:
    host, _ = gateway
    other = jwt.encode({"exp": int(time.time() + 86400 * 30), "aud": SERIAL}, "another key, also 32 bytes or more")
    path = envoy_config(tmp_path, host, token=other)
    status, out, err = await capture("-c", str(path), "-o", "cap", cwd=tmp_path)
    assert status == 0, err
    about = json.loads((tmp_path / "cap" / "capture.json").read_text())
    assert about["endpoints"]["/ivp/ensemble/relay"] == {"status": 401, "file": None}
    assert "(serial 900000000001) refused the token (401)" in err  # the source's own log line, redacted
    assert any("Enlighten login" in problem for problem in about["problems"])  # the cloud leads nowhere here
    files = output_files(tmp_path / "cap")
    assert_no_secret([*files.values(), out.encode(), err.encode()], [other, TOKEN, PASSWORD, USER, SERIAL])


# --- the pyPowerwall proxy ------------------------------------------------------------------------------------

SITE_NAME, DIN = "Maple Street Cottage", "1232100-00-E--TG123456789ABC"
PACKS = ("TG0000000000A1", "TG0000000000A2")
PROXY_PASSWORD = "proxy-pass"


@pytest.fixture
async def proxy() -> AsyncIterator[str]:
    """pyPowerwall's proxy on loopback, answering the recorded routes (with a site name, a DIN, an e-mail)."""
    answers: dict[str, object] = {}
    for name in ("proxy", "on-grid"):
        answers |= json.loads((PROXY / f"{name}.json").read_text())
    stats = answers["/stats"]
    assert isinstance(stats, dict)
    stats |= {"site_name": SITE_NAME, "din": DIN, "siteid": SITE_ID}

    async def answer(request: web.Request) -> web.Response:
        body = answers.get(request.path)
        return web.json_response(body) if body is not None else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{path:.*}", answer)
    async with Sidecar(app, "127.0.0.1", 0) as server:
        yield f"http://me:{PROXY_PASSWORD}@127.0.0.1:{server.port}"


async def test_a_powerwall_proxy_is_captured_route_by_route(tmp_path: Path, proxy: str) -> None:
    path = config(tmp_path, f'[source]\nkind = "powerwall"\nurl = "{proxy}"')
    status, out, err = await capture("-c", str(path), "-o", "pw.tgz", cwd=tmp_path)
    assert status == 0, err
    files = output_files(tmp_path / "pw.tgz")
    for route in ("/stats", "/version", "/api/system_status", "/soe", "/api/system_status/grid_status", "/aggregates"):
        assert file_name(route) in files and f"{file_name(route)}_log.json" in files, route
    assert json.loads(files["soe"]) == {"percentage": 72.6}
    stats = json.loads(files["stats"])
    assert stats["site_name"] == "NAME0001" and stats["din"] == "SERIAL0001" and stats["siteid"] == "9000000001"
    assert stats["config"]["PW_EMAIL"] == "user1@example.com" and stats["config"]["PW_PASSWORD"] == "REDACTED"
    blocks = json.loads(files["api_system_status"])["battery_blocks"]
    assert [b["PackageSerialNumber"] for b in blocks] == ["SERIAL0002", "SERIAL0003"]
    about = json.loads(files["capture.json"])
    assert about["source"] == "powerwall" and about["firmware"] == "25.10.1 5f2ef1a3"
    assert about["redacted"]["serial"]["values"] == 3 and about["redacted"]["name"]["values"] == 1
    assert_no_secret([*files.values(), out.encode(), err.encode()],
                     [PROXY_PASSWORD, SITE_NAME, DIN, *PACKS, SITE_ID, "owner@example.com"])  # fmt: skip
    assert_port_file_untouched(tmp_path)


# --- a family of the tests' own (tests/helpers/family.py), through the registry --------------------------------

STATION_SERIAL = "WS0001234567"
# A `nutbridge capture` process with the wind station registered first: with its capture hook ("hook") or not.
WITH_THE_STATION = """
import dataclasses, sys
from nutbridge.capture import main
from nutbridge.devices import registry
from tests.helpers.family import FAMILY
registry.register(FAMILY if sys.argv[1] == "hook" else dataclasses.replace(FAMILY, capture=None))
sys.exit(main(sys.argv[2:]))
"""


async def capture_the_station(hook: bool, *args: str, cwd: Path) -> tuple[int, str, str]:
    """``nutbridge capture ARGS`` in ``cwd`` where the wind station is a registered family: status, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WITH_THE_STATION, "hook" if hook else "none", *args, cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_family_of_the_tests_is_captured_by_its_own_hook_with_its_serial_replaced(tmp_path: Path) -> None:
    answer = f"charge=73 wind=4.5 serial={STATION_SERIAL}\n".encode()
    async with station(lambda: answer) as port:
        path = config(tmp_path, f'[source]\nkind = "{KIND}"\nport = {port}\nserial = "{STATION_SERIAL}"')
        status, out, err = await capture_the_station(True, "-c", str(path), "-o", "cap", cwd=tmp_path)
    assert status == 0, err
    files = output_files(tmp_path / "cap")
    assert files["READ"] == b"charge=73 wind=4.5 serial=SERIAL0001\n"  # its one answer, the serial replaced
    about = json.loads(files["capture.json"])
    assert about["source"] == KIND and about["problems"] == []
    assert about["endpoints"] == {"/READ": {"status": 200, "file": "READ"}}
    assert about["redacted"] == {"serial": {"values": 1, "places": 1}}
    assert "serial numbers 1 (1 replacements)" in out
    assert_no_secret([*files.values(), out.encode(), err.encode()], [STATION_SERIAL])
    assert_port_file_untouched(tmp_path)


async def test_a_family_without_a_capture_hook_is_refused_and_nothing_else_is_captured(tmp_path: Path) -> None:
    asked: list[int] = []

    def answer() -> bytes:
        asked.append(1)
        return b"charge=73 wind=4.5\n"

    async with station(answer) as port:
        path = config(tmp_path, f'[source]\nkind = "{KIND}"\nport = {port}')
        status, out, err = await capture_the_station(False, "-c", str(path), "-o", "cap", cwd=tmp_path)
    assert status == 1 and out == ""
    assert "nutbridge capture: a 'windstation' source cannot be captured: its device family has no capture hook" in err
    assert asked == [] and not (tmp_path / "cap").exists()  # no device asked, not the station nor another
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".nutbridge-capture")] == []
    assert_port_file_untouched(tmp_path)


# --- the redactor alone ---------------------------------------------------------------------------------------


def test_placeholders_are_stable_and_keep_the_values_shape() -> None:
    redactor = Redactor()
    answers = ['{"serial_num": 122233445566, "mac": "aa-bb-cc-dd-ee-ff", "Email": "a.b@example.net"}',
               "<x><sn>122233445566</sn><id>ok</id></x> contact a.b@example.net, meter 122233445566EIM1"]  # fmt: skip
    for text in answers:
        redactor.learn(text)
    first, second = (redactor.apply(text) for text in answers)
    assert json.loads(first) == {"serial_num": 900000000001, "mac": "00:00:5e:00:53:01", "Email": "user1@example.com"}
    assert second == "<x><sn>900000000001</sn><id>ok</id></x> contact user1@example.com, meter 900000000001EIM1"
    assert redactor.summary() == {
        "serial": {"values": 1, "places": 3},
        "email": {"values": 1, "places": 2},
        "mac": {"values": 1, "places": 1},
    }
    assert redactor.apply("1122233445566 is another number") == "1122233445566 is another number"
    redactor.learn('{"site_name": "Müller Home", "din": "1232100-00-E/TG12"}')
    escaped = json.dumps({"site_name": "Müller Home", "din": "1232100-00-E/TG12"}).replace("/", "\\/")
    assert json.loads(redactor.apply(escaped)) == {"site_name": "NAME0001", "din": "SERIAL0002"}
