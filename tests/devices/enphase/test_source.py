"""The Enphase IQ Gateway source against a real HTTPS server on loopback playing the gateway and the cloud,
from fixtures; enphase-monitor's arithmetic (rounded as bash's printf); TEST mode; its configuration file read
unchanged; the storage meter's sign, a site without a battery, the capacity, a 404 (issue 17). Recorded firmware,
end to end: devices/enphase/test_firmware.py."""

from __future__ import annotations

import contextlib
import json
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nutbridge import enphase_conf
from nutbridge.devices.enphase.config import EnvoyConfig
from nutbridge.devices.enphase.model import GatewayReading, Meter
from nutbridge.devices.enphase.nut import TABLE, hundredths, one, printf_f, ratio
from nutbridge.devices.enphase.source import EnvoySource, meter
from nutbridge.devices.enphase.testmode import FixtureGateway, shipped
from nutbridge.devices.enphase.token import TokenCache
from nutbridge.devices.tracer import nut as charge_controller
from nutbridge.errors import ConfigError, Refused, SourceError
from nutbridge.model import DeviceInfo
from nutbridge.monitor import Monitor
from nutbridge.nut.variables import charge_low, evaluate
from nutbridge.power import power_state
from nutbridge.server.app import Sidecar, tls_context
from nutbridge.snapshot import Comms
from nutbridge.testmode import StateCycle
from tests.helpers.envoy import SERIAL, Gateway
from tests.helpers.monitor import nut_view

FIXTURES = Path(__file__).parents[3] / "test-fixtures" / "envoy"


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
            min_renew_interval=0,  # the cache's guard against a login per poll is tested in test_token
        )
        host = f"127.0.0.1:{server.port}"
        async with EnvoySource(host, serial=SERIAL, tokens=tokens, timeout=2, **kw) as source:  # type: ignore[arg-type]
            yield source


def nut(reading: GatewayReading, info: DeviceInfo, by_hand: dict[str, str] | None = None) -> dict[str, str]:
    hand = by_hand or {}
    values = evaluate(TABLE, reading, info, hand, power_state(reading, charge_low=charge_low(hand), previous=None))
    return {k: v for k, v in values.items() if v is not None}


async def read_nut(source: EnvoySource, by_hand: dict[str, str] | None = None) -> dict[str, str]:
    reading = await source.read()
    assert source.info is not None
    return nut(reading, source.info, by_hand)


# --- enphase-monitor's arithmetic, on the figures measured from the original ---------------------------


def test_the_shell_arithmetic_is_kept_digit_for_digit() -> None:
    # bash's printf (a long double): -0.005 is -0.00500000000000000000010…, so -0.00 (Python's double: -0.01)
    assert hundredths("2210.6") == 221060 and hundredths(-0.005) == 0 and hundredths("-1.005") == -100
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
        # the storage meter's -2.44 W at 243.3 V: charging, so + (enphase-monitor writes -0.01)
        assert values["battery.current"] == "0.01" and values["battery.voltage"] == "86.4"
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
    # enphase-monitor's digits (bench.enphase_compare --variants): bash rounds 455.55 and 231.15 as long doubles
    assert values["output.L2.realpower"] == "455.5" and values["output.L2-N.voltage"] == "231.1"
    assert values["input.L2-N.voltage"] == "231.1"
    assert values["input.L1.current"] == "-0.52" and values["input.L3.powerfactor"] == "0.80"
    # the capacity is secctrl's Max_energy (the shipped answer's 10000 Wh), not live's enc_agg_energy (stored now)
    assert values["battery.charge"] == "55" and values["battery.capacity"] == "10000"


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
    monitor = Monitor(cycle, interval=0.5, grace=0, before_poll=cycle.advance, **nut_view(TABLE))
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

    etc = Path(__file__).parents[3] / "etc"
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
        monitor = Monitor(cycle, interval=0.5, grace=0, before_poll=cycle.advance, **nut_view(charge_controller.TABLE))
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
    from tests.helpers.schema import validate

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


# --- issue 17: signs, no battery, capacity, a 404 ---------------------------------------------------------


def with_storage(watts: float, volts: float) -> str:
    """The shipped reports with the storage meter's cumulative row set to ``watts`` at ``volts``."""
    reports = json.loads(shipped("reports"))
    for report in reports:
        if report["reportType"] == "storage":
            report["cumulative"].update(currW=watts, actPower=watts, rmsVoltage=volts)
    return json.dumps(reports)


@pytest.mark.parametrize(
    ("watts", "volts", "current"),
    [(-7083.656, 247.392, "28.63"), (-2579.823, 242.582, "10.63"), (-1297.667, 240.684, "5.39")],
)
async def test_a_storage_meter_reading_negative_is_a_charging_battery(
    tmp_path: Path, certificate: tuple[Path, Path], watts: float, volts: float, current: str
) -> None:
    """ivp/meters/reports' storage meter with the figures three recorded sites read while charging hard (pyenphase's
    8.2.4286, 8.2.127 and 8.3.1598 fixtures, storage meter in ivp/meters/readings): CHRG and a + current, where
    nutbridge wrote DISCHRG and -28.63 / -10.63 / -5.39."""
    async with gateway_source(tmp_path, certificate, Gateway(reports=with_storage(watts, volts))) as source:
        values = await read_nut(source)
    assert values["ups.status"] == "OL CHRG" and values["battery.current"] == current
    async with gateway_source(tmp_path, certificate, Gateway(reports=with_storage(-watts, volts))) as source:
        values = await read_nut(source)
    assert values["ups.status"] == "OL DISCHRG" and values["battery.current"] == f"-{current}"


NO_ENCHARGE = '[{"type": "ENPOWER", "devices": [{"serial_num": "1"}]}, {"type": "ENCHARGE", "devices": []}]'


async def test_a_site_without_a_battery_is_never_low_on_it(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    """An Enpower and no battery (the inventory's ENCHARGE devices empty, secctrl's Max_energy 0, as pyenphase's
    8.3.5169_with_generator records): the gateway's charge of 0 means no battery, so an outage is OB, never OB LB."""
    gw = Gateway(soc="0", inventory=NO_ENCHARGE, relay="open",
                 secctrl='{"agg_soc": 0, "Max_energy": 0, "soc_recovery_exit": 10}')  # fmt: skip
    async with gateway_source(tmp_path, certificate, gw) as source:
        values = await read_nut(source)
    assert values["ups.status"] == "OB"
    for name in ("battery.charge", "battery.capacity", "battery.runtime", "battery.current", "battery.voltage",
                 "battery.type", "battery.charge.restart", "ups.load"):  # fmt: skip
        assert name not in values, name
    assert values["input.realpower"] == "-1405.1"  # the meters are still read
    gw = Gateway(soc="0", relay="open", inventory=NO_ENCHARGE.replace('"devices": []', '"devices": [{}]'))
    async with gateway_source(tmp_path, certificate, gw) as source:
        assert (await read_nut(source))["ups.status"] == "OB LB"  # a battery at 0 %: empty, and low


async def test_the_capacity_is_the_batteries_maximum_not_what_they_hold_now(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    """live's enc_agg_energy is the energy stored now (86 % → 8600 Wh of 10000); secctrl's Max_energy is the full
    battery (its ENC_agg_avail_energy = agg_soc × Max_energy in every recorded answer). With the capacity taken at
    86 %, runtime and ups.load would scale with the charge at connect time."""
    live = shipped("live").replace(
        '"enc_agg_soc": 100, "enc_agg_energy": 10000', '"enc_agg_soc": 86, "enc_agg_energy": 8600'
    )
    assert live != shipped("live")
    async with gateway_source(tmp_path, certificate, Gateway(live=live, soc="86")) as source:
        values = await read_nut(source)
    assert values["battery.capacity"] == "10000"
    assert values["ups.load"] == "28.7"  # 2210.6 W / (768 W per kWh × 10 kWh), as enphase-monitor's formula


async def test_a_404_is_an_answer_not_retried_within_the_poll(
    tmp_path: Path, certificate: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """A 404 from the relay (and ivp/ensemble/status) is a definite answer: one request each per poll, reported as
    HTTP 404, never as "without an answer"; one line names the endpoint and the firmware."""
    gw = Gateway(refusing={"ivp/ensemble/relay": 404, "ivp/ensemble/status": 404})
    async with gateway_source(tmp_path, certificate, gw) as source:
        monitor = Monitor(source, interval=5, grace=0)
        snapshot = await monitor.poll()
        assert snapshot.comms is Comms.LOST and "HTTP 404" in str(snapshot.error)
        assert gw.requests["ivp/ensemble/relay"] == 1 and gw.requests["ivp/ensemble/status"] == 1
        await monitor.poll()
    assert gw.requests["ivp/ensemble/status"] == 2  # asked again next poll (a firmware update may bring it)
    assert "without an answer" not in caplog.text and "without a usable answer" in caplog.text
    named = [r.getMessage() for r in caplog.records if "has no ivp/ensemble/relay" in r.getMessage()]
    assert len([m for m in named if m.startswith("Enphase")]) == 1 and "firmware D8.2.4378" in named[0]
    gw.refusing = {"ivp/ensemble/relay": 403}
    async with gateway_source(tmp_path, certificate, gw) as source:
        with pytest.raises(Refused, match="HTTP 403 Forbidden"):
            await Monitor(source, interval=5, grace=0).read(float("inf"))


def test_decimals_round_as_bashs_printf_and_keep_the_sign_of_zero() -> None:
    """enphase-monitor formats with bash's printf, which reads a number into a long double: 455.55 (a tie as
    written) is 455.549999… there and 455.55000…01 as a double, so 455.5 where Python's f-string wrote 455.6; and
    a meter reading -0.0 (recorded: 7.3.466's L2) is written -0.0, where nutbridge's ``or 0.0`` made it 0.0."""
    assert (printf_f(455.55, 1), printf_f("231.15", 1), printf_f(-0.04, 1)) == ("455.5", "231.1", "-0.0")
    assert one(meter({"currW": -0.0}).watts) == "-0.0"
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash to compare with")
    texts = ["455.55", "231.15", "-1.005", "0.125", "2.675", "-0.0", "1004", "60.05", "0.005", "-0.005", "1e-05"]
    texts += [f"{n / 1000:.3f}" for n in range(-3005, 3005, 10)]
    script = 'for v in "$@"; do LC_NUMERIC=C printf "%.1f %.2f\\n" "$v" "$v"; done'
    out = subprocess.run([bash, "-c", script, "-", *texts], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.splitlines() == [f"{printf_f(t, 1)} {printf_f(t, 2)}" for t in texts]
