"""The Enphase IQ Gateway source against a real HTTPS server on loopback playing the gateway and the cloud,
from fixtures; enphase-monitor's arithmetic; TEST mode; its configuration file read unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import pytest
from aiohttp import web

from nutbridge import enphase_conf
from nutbridge.config import EnvoyConfig
from nutbridge.errors import ConfigError, SourceError
from nutbridge.model import DeviceInfo
from nutbridge.monitor import Monitor
from nutbridge.nut.enphase import TABLE, GatewayReading, Meter, hundredths, ratio
from nutbridge.nut.variables import evaluate
from nutbridge.server.app import Sidecar, tls_context
from nutbridge.snapshot import Comms
from nutbridge.sources.envoy import EnvoySource
from nutbridge.sources.envoy_testmode import FixtureGateway, shipped
from nutbridge.sources.envoy_token import TokenCache
from nutbridge.testmode import StateCycle

FIXTURES = Path(__file__).parent.parent / "test-fixtures" / "envoy"
SERIAL = "202400000001"
KEY = "a key for the test's tokens, 32 bytes or more"


def token(lifetime: float = 86400 * 30) -> str:
    return jwt.encode({"exp": int(time.time() + lifetime), "aud": SERIAL}, KEY, algorithm="HS256")


@dataclass
class Gateway:
    """What the fake gateway answers; ``requests`` counts each path asked."""

    relay: str = "closed"
    soc: str = "100"
    live: str = shipped("live")
    reports: str = shipped("reports")
    refuse_tokens: int = 0  # answer 401 to this many requests
    broken: set[str] = field(default_factory=set)  # paths answered with garbage
    failing: set[str] = field(default_factory=set)  # paths answered with a 500
    hanging: set[str] = field(default_factory=set)  # paths that never answer
    requests: dict[str, int] = field(default_factory=dict)
    tokens_issued: int = 0

    def app(self) -> web.Application:
        async def gateway(request: web.Request) -> web.Response:
            path = request.path.lstrip("/")
            self.requests[path] = self.requests.get(path, 0) + 1
            if not request.headers.get("Authorization", "").startswith("Bearer ") or self.refuse_tokens > 0:
                self.refuse_tokens -= 1
                return web.Response(status=401)
            if path in self.broken:
                return web.Response(text="<html>not json")
            if path in self.failing:
                return web.Response(status=500)
            if path in self.hanging:
                await asyncio.sleep(2.5)  # past the source's 2 s timeout
            texts = {"ivp/ensemble/relay": shipped("relay").replace("@RELAY_STATE@", self.relay),
                     "ivp/livedata/status": self.live.replace("@BATT_SOC@", self.soc),
                     "ivp/meters/reports": self.reports, "ivp/ensemble/secctrl": shipped("secctrl"),
                     "info.xml": shipped("info")}  # fmt: skip
            return web.Response(text=texts[path]) if path in texts else web.Response(status=404)

        async def login(request: web.Request) -> web.Response:
            form = await request.post()
            ok = form.get("user[email]") == "me@example.org" and form.get("user[password]") == "secret pw"
            return web.json_response({"session_id": "abc"} if ok else {"message": "nope"}, status=200 if ok else 401)

        async def tokens(request: web.Request) -> web.Response:
            self.tokens_issued += 1
            return web.Response(text=token())

        app = web.Application()
        app.router.add_post("/login/login.json", login)
        app.router.add_post("/tokens", tokens)
        app.router.add_get("/{path:.*}", gateway)
        return app


@contextlib.asynccontextmanager
async def gateway_source(
    tmp_path: Path, certificate: tuple[Path, Path], gw: Gateway, **kw: object
) -> AsyncIterator[EnvoySource]:
    cert, key = certificate
    trust = ssl.create_default_context(cafile=str(cert))
    async with Sidecar(gw.app(), "127.0.0.1", 0, tls=tls_context(cert, key)) as server:
        base = f"https://127.0.0.1:{server.port}"
        tokens = TokenCache(
            tmp_path / "envoy.token",
            serial=SERIAL,
            username="me@example.org",
            password="secret pw",
            login_url=f"{base}/login/login.json?",
            token_url=f"{base}/tokens",
            verify=trust,
            min_renew_interval=0,  # the cache's guard against a login per poll is tested in test_envoy_token
        )
        host = f"127.0.0.1:{server.port}"
        async with EnvoySource(host, serial=SERIAL, tokens=tokens, timeout=2, **kw) as source:  # type: ignore[arg-type]
            yield source


def nut(reading: GatewayReading, info: DeviceInfo, by_hand: dict[str, str] | None = None) -> dict[str, str]:
    values, _ = evaluate(TABLE, reading, info, by_hand or {}, None)
    return {k: v for k, v in values.items() if v is not None}


async def read_nut(source: EnvoySource, by_hand: dict[str, str] | None = None) -> dict[str, str]:
    reading = await source.read()
    assert source.info is not None
    return nut(reading, source.info, by_hand)


# --- enphase-monitor's arithmetic, on the figures measured from the original ---------------------------


def test_the_shell_arithmetic_is_kept_digit_for_digit() -> None:
    assert hundredths("2210.6") == 221060 and hundredths(-0.005) == -1 and hundredths("-1.005") == -100
    assert ratio(2, -140510, 24330) == "-5.77"  # truncated toward zero, sign kept
    assert ratio(2, -244, 24330) == "-0.01" and ratio(2, 0, 0) == "0.00" and ratio(1, 8640, 100) == "86.4"
    info = DeviceInfo(mfr="Enphase Energy", model="IQ Gateway", battery_energy=10000, battery_charge_restart=10)
    load = (Meter(watts=2210.62, volts=243.273),)
    for soc, volts, runtime in ((100, "90.0", "14656"), (90, "87.5", None), (17, "76.0", "1139")):
        values = nut(GatewayReading(time=0, battery_charge=soc, on_line=False, load=load), info,
                     {"battery.voltage.high": "90.0"})  # fmt: skip
        assert values["battery.voltage"] == volts
        if runtime:
            assert values["battery.runtime"] == runtime
        assert values["ups.load"] == "28.7"
    idle = nut(GatewayReading(time=0, battery_charge=50, on_line=True, load=(Meter(watts=-3),)), info)
    assert idle["battery.runtime"] == "172800"  # no load: 2 days, enphase-monitor's "unlimited"


# --- the source against a real HTTPS gateway --------------------------------------------------------------


async def test_split_phase_site_on_grid_then_islanded(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    gw = Gateway()
    async with gateway_source(tmp_path, certificate, gw) as source:
        values = await read_nut(source)
        assert values["ups.status"] == "OL"
        assert values["battery.charge"] == "100"
        assert values["input.realpower"] == "-1405.1" and values["input.current"] == "-5.77"
        assert values["output.realpower"] == "2210.6" and values["output.voltage"] == "243.3"
        assert values["input.powerfactor"] == "-1.00" and values["output.frequency"] == "60.0"
        assert values["battery.current"] == "-0.01" and values["battery.voltage"] == "86.4"
        assert values["battery.capacity"] == "10000" and values["battery.charge.restart"] == "10"
        assert values["ups.firmware"] == "D8.2.4378" and values["device.serial"] == SERIAL
        assert "input.phases" not in values and not any(".L1" in k for k in values)  # split phase: cumulative only
        gw.relay, gw.soc = "open", "15"
        values = await read_nut(source)
        assert values["ups.status"] == "OB LB" and values["battery.charge"] == "15"
        assert gw.requests["info.xml"] == 1  # once per connection
        assert (tmp_path / "envoy.token").stat().st_mode & 0o777 == 0o600


async def test_three_phase_site_writes_each_line(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    gw = Gateway(
        live=(FIXTURES / "live-3phase.json").read_text(), reports=(FIXTURES / "reports-3phase.json").read_text()
    )
    async with gateway_source(tmp_path, certificate, gw) as source:
        values = await read_nut(source)
    assert values["input.phases"] == values["output.phases"] == "3"
    assert values["output.L2.realpower"] == "455.6" and values["output.L2-N.voltage"] == "231.2"
    assert values["input.L1.current"] == "-0.52" and values["input.L3.powerfactor"] == "0.80"
    assert values["battery.charge"] == "55" and values["battery.capacity"] == "5000"


async def test_no_batteries_and_meters_off(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    gw = Gateway(live=(FIXTURES / "live-no-batteries.json").read_text())
    async with gateway_source(tmp_path, certificate, gw, meters=False) as source:
        values = await read_nut(source)
    assert values["ups.status"] == "OL"
    assert "battery.charge" not in values and "battery.runtime" not in values
    assert not any(k.startswith(("input.", "output.")) for k in values)  # not measured: not written as 0
    assert "ivp/meters/reports" not in gw.requests


async def test_a_401_renews_the_token_once_then_fails_the_poll(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    gw = Gateway()
    async with gateway_source(tmp_path, certificate, gw) as source:
        await source.read()
        issued = gw.tokens_issued
        gw.refuse_tokens = 1
        assert (await read_nut(source))["ups.status"] == "OL"  # renewed, then answered
        assert gw.tokens_issued == issued + 1
        gw.refuse_tokens = 2
        with pytest.raises(SourceError, match="refused again after renewal"):
            await source.read()


async def test_garbage_is_a_failed_poll_not_data(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    gw = Gateway()
    async with gateway_source(tmp_path, certificate, gw) as source:
        gw.broken.add("ivp/ensemble/relay")
        with pytest.raises(SourceError, match="not JSON"):
            await source.read()
        gw.broken.clear()
        gw.relay = "half-open"
        with pytest.raises(SourceError, match="mains_oper_state is 'half-open'"):
            await source.read()
        gw.relay = "closed"
        gw.broken.add("ivp/livedata/status")  # a failed live query keeps the last charge, as enphase-monitor
        assert (await read_nut(source))["ups.status"] == "OL"


async def test_a_refused_login_is_a_failed_poll_and_never_leaks_the_password(
    tmp_path: Path, certificate: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    gw = Gateway()
    async with gateway_source(tmp_path, certificate, gw) as source:
        source.tokens._password = "wrong"  # as a user with a changed password
        monitor = Monitor(source, interval=5, grace=0)
        snapshot = await monitor.poll()
    assert snapshot.comms is Comms.LOST and "login refused" in str(snapshot.error)
    assert "wrong" not in caplog.text and "secret pw" not in caplog.text


# --- TEST mode --------------------------------------------------------------------------------------------


async def test_test_mode_loops_through_every_state(tmp_path: Path) -> None:
    gateway = FixtureGateway(
        {}, serial=SERIAL, login_url="https://login.test/login.json?", token_url="https://t.test/tokens"
    )
    tokens = TokenCache(tmp_path / "t.token", serial=SERIAL, username="u", password="p", login_url=gateway.login_url,
                        token_url=gateway.token_url, transport=gateway.transport, min_renew_interval=0)  # fmt: skip
    source = EnvoySource("envoy.test", serial=SERIAL, tokens=tokens, timeout=1, transport=gateway.transport)
    cycle = StateCycle(source, gateway.driver(tokens), lambda: 18.0)
    monitor = Monitor(cycle, interval=0.5, grace=0, before_poll=cycle.advance)
    seen = []
    async with cycle:
        for _ in range(7):
            snapshot = await monitor.poll()
            seen.append(snapshot.variables.get("ups.status") if snapshot.ok else snapshot.comms.value)
    assert seen == ["OL", "lost", "OL", "OB", "OB LB", "OL", "lost"]


def test_an_empty_fixture_makes_that_query_fail() -> None:
    gateway = FixtureGateway({"relay": ""}, serial=SERIAL, login_url="https://l/", token_url="https://t/")
    import httpx

    assert gateway.answer(httpx.Request("GET", "https://envoy/ivp/ensemble/relay")).status_code == 500
    assert gateway.answer(httpx.Request("GET", "https://envoy/ivp/ensemble/secctrl")).status_code == 200


# --- enphase-monitor's configuration file -----------------------------------------------------------------

CONF = """# required config
USERNAME="me@example.org"
PASSWORD='secret pw'
SERIAL="202400000001"
PORT_FILE=test.dev
STATE_DIR=.
POLLFREQ=6
POLLFREQALERT=5
#DISABLE_METERS=1
LOADKWH=500
TEST=1
DEBUG=1
TEST_INFO="<?xml version='1.0'?>
<envoy_info><device><software>X1</software></device></envoy_info>
"
"""


def test_an_enphase_monitor_config_is_read_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "enphase-solar.conf"
    path.write_text(CONF)
    path.chmod(0o640)  # group-readable is how enphase-monitor's files are often kept: accepted, as there
    config = enphase_conf.load(path)
    assert isinstance(config.source, EnvoyConfig)
    assert (config.source.username, config.source.password, config.source.serial) == (
        "me@example.org", "secret pw", SERIAL)  # fmt: skip
    assert config.nut.port_file == tmp_path / "test.dev"
    assert config.source.token_file == tmp_path / "enphase-solar.token"
    assert (config.monitor.poll_interval, config.monitor.poll_interval_on_battery) == (6, 5)
    assert config.source.load_kwh == 500 and config.source.meters is True
    assert config.test.enabled and config.test.info is not None and "<software>X1</software>" in config.test.info
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="world read permissions"):
        enphase_conf.load(path)
    path.chmod(0o600)
    path.write_text("USERNAME=x\n$(rm -rf /)\n")
    with pytest.raises(ConfigError, match="not a KEY=VALUE line"):
        enphase_conf.load(path)


def test_state_dir_is_read_without_a_warning_and_small_values_are_raised_as_there(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """bench.enphase_compare on enphase-monitor's own test.conf: STATE_DIR=. was warned about as unknown
    ("ignored") though it was used; and a POLLFREQ=1 or LOGIN_TIMEOUT=3 the original raises to its minimum
    was polled every second or refused."""
    path = tmp_path / "test.conf"
    path.write_text(CONF)
    path.chmod(0o600)
    with caplog.at_level("INFO", logger="nutbridge.enphase_conf"):
        config = enphase_conf.load(path)
    assert config.nut.port_file == tmp_path / "test.dev"
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text
    small = "POLLFREQ=1\nPOLLFREQALERT=2\nLOGIN_TIMEOUT=3\nAPI_TIMEOUT=1\n"
    path.write_text(CONF.replace("POLLFREQ=6\nPOLLFREQALERT=5\n", small))
    with caplog.at_level("INFO", logger="nutbridge.enphase_conf"):
        config = enphase_conf.load(path)
    assert isinstance(config.source, EnvoyConfig)
    assert (config.monitor.poll_interval, config.monitor.poll_interval_on_battery) == (5, 5)
    assert (config.source.login_timeout, config.source.api_timeout) == (5, 2)
    assert "POLLFREQ=1 is below enphase-monitor's minimum: 5" in caplog.text


def test_nutbridge_ups_falls_back_to_enphase_ups_conf_and_runs_test_mode(tmp_path: Path) -> None:
    (tmp_path / "enphase-solar.conf").write_text(CONF.replace("POLLFREQ=6", "POLLFREQ=1"))
    (tmp_path / "enphase-solar.conf").chmod(0o600)
    (tmp_path / "test.dev").write_text("# mine\nbattery.charge.low: 18\n")
    run = subprocess.run(
        [sys.executable, "-m", "nutbridge", "-s", "--nut-version", "2.8.0", "solar"],
        env={"NUT_CONFPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    lines = (tmp_path / "test.dev").read_text().splitlines()
    assert lines[:2] == ["# mine", "battery.charge.low: 18"]  # the hand-set lines stay, first
    assert "ups.status: OL" in lines and "ups.firmware: X1 # nutbridge" in lines
    assert "secret pw" not in run.stderr


def test_the_sample_test_configurations_load(tmp_path: Path) -> None:
    from nutbridge.config import load

    etc = Path(__file__).parent.parent / "etc"
    toml = load(etc / "test.toml")
    assert toml.test.enabled and isinstance(toml.source, EnvoyConfig)
    conf = tmp_path / "test.conf"
    conf.write_text((etc / "test.conf").read_text())
    conf.chmod(0o600)
    config = enphase_conf.load(conf)
    assert config.test.enabled and config.nut.port_file == tmp_path / "test.dev"
    assert (config.monitor.poll_interval, config.monitor.poll_interval_on_battery) == (6, 5)


async def test_test_mode_drives_the_simulator_through_the_same_states() -> None:
    from nutbridge.simulator.source import SimulatedSource

    async with SimulatedSource(timeout=0.3) as simulated:
        cycle = StateCycle(simulated, simulated.enter, lambda: 20.0)
        monitor = Monitor(cycle, interval=0.5, grace=0, before_poll=cycle.advance)
        seen = []
        for _ in range(5):
            snapshot = await monitor.poll()
            words = (snapshot.variables.get("ups.status") or "").split()
            seen.append([w for w in words if w in ("OL", "OB", "LB")] if snapshot.ok else snapshot.comms.value)
            if snapshot.ok:
                assert snapshot.reading is not None
                assert snapshot.reading.battery_charge == {0: 100, 2: 100, 3: 90, 4: 19}[len(seen) - 1]
    assert seen == [["OL"], "lost", ["OL"], ["OB"], ["OB", "LB"]]


async def test_a_gateways_reading_is_served_by_the_json_api(tmp_path: Path) -> None:
    from types import MappingProxyType

    from nutbridge.server.app import make_app
    from nutbridge.server.live import LiveSnapshot
    from nutbridge.snapshot import Snapshot
    from tests.test_schema import validate

    live = LiveSnapshot(interval=5)
    reading = GatewayReading(time=time.time(), battery_charge=80, on_line=True, load=(Meter(watts=500, volts=240),))
    await live.update(Snapshot(seq=1, time=reading.time, comms=Comms.OK, reading=reading,
                               variables=MappingProxyType({"ups.status": "OL"})))  # fmt: skip
    async with Sidecar(make_app(tmp_path, live=live), "127.0.0.1", 0) as server:
        assert await validate(f"http://127.0.0.1:{server.port}", "/api/status") == 200


async def test_single_phase_site(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    live, reports = (
        (FIXTURES / "live-single-phase.json").read_text(),
        (FIXTURES / "reports-single-phase.json").read_text(),
    )
    async with gateway_source(tmp_path, certificate, Gateway(live=live, reports=reports)) as source:
        values = await read_nut(source)
    assert values["battery.charge"] == "64" and values["input.voltage"] == "230.2"
    assert values["output.realpower"] == "1004.0" and values["output.frequency"] == "50.0"
    assert values["output.current"] == "4.36"  # 1004.0 W / 230.2 V, truncated
    assert "input.phases" not in values and not any(".L1" in k for k in values)


async def test_a_500_or_a_hang_is_a_failed_poll_and_the_next_one_works(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    gw = Gateway()
    async with gateway_source(tmp_path, certificate, gw) as source:
        gw.failing.add("ivp/ensemble/relay")
        with pytest.raises(SourceError, match="HTTP 500"):
            await source.read()
        gw.failing.clear()
        gw.hanging.add("ivp/ensemble/relay")
        with pytest.raises(SourceError, match="no answer within 2 s"):
            await source.read()
        gw.hanging.clear()
        assert (await read_nut(source))["ups.status"] == "OL"
