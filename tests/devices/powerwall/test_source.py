"""The Powerwall through a pyPowerwall proxy, as a user would check it: a local HTTP server plays the proxy with
the answers in test-fixtures/powerwall/ (shapes from pyPowerwall's proxy), and with its faults."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from aiohttp import web

from nutbridge.devices.powerwall.model import PowerwallInfo
from nutbridge.devices.powerwall.nut import TABLE
from nutbridge.devices.powerwall.source import PowerwallSource
from nutbridge.errors import ProtocolError, SourceError
from nutbridge.monitor import Monitor
from nutbridge.nut.portfile_text import parse_values
from nutbridge.nut.variables import setting_names
from nutbridge.snapshot import Comms, Snapshot
from tests.helpers import free_port
from tests.helpers.monitor import nut_view
from tests.helpers.powerwall import ROOT, Answer, Clock, FakeProxy

NAMES_FILE = ROOT / "test-fixtures" / "nut-names.txt"
SOE, GRID, AGGREGATES = "/soe", "/api/system_status/grid_status", "/aggregates"


@pytest.fixture
async def proxy() -> AsyncIterator[FakeProxy]:
    """The proxy on an ephemeral loopback port: two Powerwall 2s on a sunny afternoon."""
    fake = FakeProxy()
    fake.play("proxy")
    fake.play("on-grid")
    app = web.Application()
    app.router.add_get("/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield fake
    fake.release.set()
    await runner.cleanup()


async def poll(
    url: str,
    *,
    source_timeout: float = 1.0,
    interval: float = 10.0,
    retries: bool = True,
    by_hand: Mapping[str, str] | None = None,
) -> Snapshot:
    """One poll as the daemon makes it, with the port file's hand-set settings ``by_hand``. A good poll ends at
    once whatever the interval, which only sets the deadline (90 % of it). The tests of failures pass
    ``retries=False`` (one attempt, as TEST mode polls): a failing poll would otherwise retry until that
    deadline, and a short deadline is one a loaded machine can miss before the first answer."""
    settings = dict(by_hand or {})
    async with PowerwallSource(url, timeout=source_timeout) as source:
        monitor = Monitor(source, interval=interval, grace=10.0, retries=retries, **nut_view(TABLE, lambda: settings))
        return await monitor.poll()


# --- what NUT is told ---


async def test_on_grid_afternoon(proxy: FakeProxy) -> None:
    snapshot = await poll(proxy.url)
    assert snapshot.ok
    assert dict(snapshot.variables) | {"device.description": "…"} == {
        "ups.status": "OL CHRG",
        "ups.alarm": None,
        "battery.charge": "73",
        "battery.charge.low": "20",
        "battery.voltage": None,  # the battery meter's volts are its AC side: not the battery's
        "battery.current": "10.36",  # 2500 W charging at 241.3 V
        "battery.temperature": None,
        "battery.runtime": "44809",  # 52.6 % of 26.74 kWh at 1130 W
        "battery.charger.status": "charging",
        "battery.capacity": None,
        "battery.type": None,
        "battery.voltage.nominal": None,
        "battery.voltage.low": None,
        "battery.voltage.high": None,
        "experimental.battery.charge.sunrise": None,  # no data log to learn the sunrise from
        "experimental.sunrise.time": None,
        "experimental.sunrise.timer": None,
        "battery.packs": "2",
        "input.realpower": "-580.0",  # exporting
        "output.realpower": "1130.0",
        "ups.load": "11.3",  # of the 10 kW two Powerwalls deliver
        "ups.realpower.nominal": "10000",
        "ups.mfr": "Tesla",
        "ups.model": "Powerwall",
        "ups.firmware": "25.10.1 5f2ef1a3",
        "device.mfr": "Tesla",
        "device.model": "Powerwall",
        "device.description": "…",
        "experimental.pv.realpower": "4210.0",
        "experimental.battery.realpower": "2500.0",
    }
    assert snapshot.variables["device.description"] == (
        "Tesla Powerwall, 2 units, 26.7 kWh, site Home, via pyPowerwall 0.16.2 Proxy t97"
    )


@pytest.mark.parametrize(
    ("scenario", "settings", "status", "charge", "runtime", "current"),
    [
        ("on-grid", {}, "OL CHRG", "73", "44809", "10.36"),
        ("off-grid", {}, "OB DISCHRG", "55", "22765", "-5.41"),  # islanded: on battery, whatever the sun
        ("low-battery", {}, "OB LB DISCHRG", "14", "0", "-3.96"),  # below battery.charge.low (20)
        ("off-grid", {"battery.charge.low": "60"}, "OB LB DISCHRG", "55", "0", "-5.41"),  # as set by hand
    ],
)
async def test_grid_and_charge_decide_the_status(
    proxy: FakeProxy, scenario: str, settings: dict[str, str], status: str, charge: str, runtime: str, current: str
) -> None:
    proxy.play(scenario)
    values = (await poll(proxy.url, by_hand=settings)).variables
    assert (values["ups.status"], values["battery.charge"]) == (status, charge)
    assert (values["battery.runtime"], values["battery.current"]) == (runtime, current)


@pytest.mark.parametrize(
    ("grid", "status"),
    [
        ("SystemGridConnected", "OL"),
        ("SystemIslandedActive", "OB"),
        ("SystemTransitionToGrid", "OB"),  # the grid is back, but the home still runs on the battery
        ("SystemTransitionToIsland", "OB"),
        ("SystemIslandedReady", "OB"),
        ("SystemMicroGridFaulted", "OB"),
        ("SystemWaitForUser", "OB"),
    ],
)
async def test_only_a_connected_grid_is_ol(proxy: FakeProxy, grid: str, status: str) -> None:
    proxy.change(GRID, {"grid_status": grid})
    proxy.change(AGGREGATES, {"battery.instant_power": 10})  # idle: no CHRG/DISCHRG
    assert (await poll(proxy.url)).variables["ups.status"] == status


# pyPowerwall's simulator (pwsimulator/stub.py at ac5d364): its scenarios' meters in Tesla's signs, balanced as
# home = solar + grid + powerwall (powerwall + discharging, grid + importing).
SIMULATOR_SCENARIOS = [
    # name, solar, home, grid, powerwall, grid_status; then what NUT must see
    ("battery-exporting", 0, 900, -2100, 3000, "SystemGridConnected", "OL DISCHRG", "-2100.0", "-3000.0"),
    ("solar-charging", 1200, 900, 0, -300, "SystemGridConnected", "OL CHRG", "0.0", "300.0"),
    ("grid-charging", 0, 900, 1200, -300, "SystemGridConnected", "OL CHRG", "1200.0", "300.0"),
    ("grid-powered", 0, 900, 900, 0, "SystemGridConnected", "OL", "900.0", "0.0"),
    ("sunny-day-outage", 4300, 1200, 0, -3100, "SystemIslandedActive", "OB CHRG", "0.0", "3100.0"),
    ("nighttime-outage", 0, 900, 0, 900, "SystemIslandedActive", "OB DISCHRG", "0.0", "-900.0"),
]


@pytest.mark.parametrize(
    ("solar", "home", "grid", "powerwall", "grid_status", "status", "input_w", "battery_w"),
    [scenario[1:] for scenario in SIMULATOR_SCENARIOS],
    ids=[scenario[0] for scenario in SIMULATOR_SCENARIOS],
)
async def test_the_simulators_scenarios_keep_their_signs(
    proxy: FakeProxy,
    solar: int,
    home: int,
    grid: int,
    powerwall: int,
    grid_status: str,
    status: str,
    input_w: str,
    battery_w: str,
) -> None:
    proxy.change(GRID, {"grid_status": grid_status})
    proxy.change(
        AGGREGATES,
        {
            "solar.instant_power": solar,
            "load.instant_power": home,
            "site.instant_power": grid,
            "battery.instant_power": powerwall,
        },
    )
    values = (await poll(proxy.url)).variables
    assert values["ups.status"] == status
    assert (values["input.realpower"], values["experimental.battery.realpower"]) == (input_w, battery_w)


async def test_idle_battery_neither_charges_nor_discharges(proxy: FakeProxy) -> None:
    proxy.change(AGGREGATES, {"battery.instant_power": -30.0})  # the meter's noise at rest
    values = (await poll(proxy.url)).variables
    assert values["ups.status"] == "OL"
    assert values["battery.current"] == "0.00" and values["battery.charger.status"] == "resting"
    assert values["experimental.battery.realpower"] == "30.0"  # the power itself is shown as measured


async def test_without_the_battery_voltage_there_is_no_current(proxy: FakeProxy) -> None:
    """pyPowerwall's cloud mode gives the battery's power but 0 V: amperes would be invented."""
    proxy.change(AGGREGATES, {"battery.instant_average_voltage": 0})
    values = (await poll(proxy.url)).variables
    assert values["battery.current"] is None and values["ups.status"] == "OL"
    assert values["battery.charger.status"] == "charging"  # known from the power alone


async def test_without_the_pack_size_there_is_no_runtime(proxy: FakeProxy) -> None:
    """/api/system_status is optional: without it NUT gets no runtime or load, never a guess."""
    proxy.answers["/api/system_status"] = Answer("TIMEOUT!")
    snapshot = await poll(proxy.url)
    assert snapshot.ok and snapshot.variables["ups.status"] == "OL CHRG"
    for name in ("battery.runtime", "ups.load", "battery.packs", "ups.realpower.nominal"):
        assert snapshot.variables[name] is None


async def test_the_number_of_powerwalls_alone_gives_13_5_kwh_each(proxy: FakeProxy) -> None:
    proxy.change("/api/system_status", {"nominal_full_pack_energy": None})
    values = (await poll(proxy.url)).variables
    assert values["battery.runtime"] == str(int(0.526 * 27000 / 1130 * 3600))
    assert "27.0 kWh" in str(values["device.description"])


async def test_device_info_from_the_proxy(proxy: FakeProxy) -> None:
    proxy.change("/stats", {"pw3": True, "config.PW_CACHE_EXPIRE": 10})
    async with PowerwallSource(proxy.url, timeout=1.0) as source:
        await source.read()
        info = source.info
        assert isinstance(info, PowerwallInfo)
        assert (info.mfr, info.model, info.firmware, info.units) == ("Tesla", "Powerwall 3", "25.10.1 5f2ef1a3", 2)
        assert source.hold == 10  # the proxy's PW_CACHE_EXPIRE


async def test_a_proxy_that_says_nothing_about_itself_still_serves(proxy: FakeProxy) -> None:
    proxy.answers["/stats"] = Answer("<html>Not here</html>", content_type="text/html")
    proxy.answers["/version"] = Answer(json.dumps({"version": "SolarOnly", "vint": 0}))
    async with PowerwallSource(proxy.url, timeout=1.0) as source:
        await source.read()
        assert source.info is not None
        assert (source.info.mfr, source.info.model, source.info.firmware) == ("Tesla", "Powerwall", None)
        assert source.hold == 5  # pyPowerwall's default


async def test_a_site_without_a_powerwall_is_never_low(proxy: FakeProxy) -> None:
    """pyPowerwall's cloud mode answers /soe 5 % for a solar-only site (its (0 + 5/0.95) × 0.95): a charge
    below battery.charge.low, LB. The proxy's 0 blocks and no pack energy say there is no battery at all."""
    proxy.play("solar-only")
    proxy.change("/api/system_status", {"max_discharge_power": 7600})  # cloud mode's site nameplate_power
    snapshot = await poll(proxy.url)
    assert snapshot.ok
    values = snapshot.variables
    assert values["ups.status"] == "OL"  # grid_status SystemGridConnected; no LB, no CHRG/DISCHRG
    for name in ("battery.charge", "battery.runtime", "battery.current", "battery.charger.status", "battery.packs"):
        assert values[name] is None, name
    assert values["ups.load"] is None and values["ups.realpower.nominal"] is None  # no Powerwall to deliver it
    assert values["experimental.battery.realpower"] is None
    assert (values["input.realpower"], values["output.realpower"]) == ("-2863.0", "867.0")  # exporting
    assert values["experimental.pv.realpower"] == "3730.0"
    assert "no battery (solar only)" in str(values["device.description"])
    assert proxy.hits[SOE] == 0  # not asked: its 5 % means nothing


async def test_zero_blocks_with_a_pack_still_has_a_battery(proxy: FakeProxy) -> None:
    """Only both signs together mean no battery: a proxy that counts 0 blocks but knows the pack's energy
    (pyPowerwall's TEDAPI mode counts blocks from a list that can come back empty) keeps LB working."""
    proxy.play("low-battery")
    proxy.change("/api/system_status", {"available_blocks": 0})
    values = (await poll(proxy.url)).variables
    assert values["ups.status"] == "OB LB DISCHRG" and values["battery.charge"] == "14"


async def test_pypowerwall_server_raw_percentage_wins(proxy: FakeProxy) -> None:
    """pypowerwall-server 0.4.0-0.11.1 answer /soe with the app's scale in percentage ((72.6 - 5) / 0.95 here)
    and the gateway's own figure in raw_percentage."""
    proxy.answers[SOE] = Answer(json.dumps({"percentage": 71.15789473684211, "raw_percentage": 72.6}))
    values = (await poll(proxy.url)).variables
    assert values["battery.charge"] == "73" and values["battery.runtime"] == "44809"


# --- failures ---


@pytest.mark.parametrize(
    ("path", "answer", "reason"),
    [
        (SOE, Answer("null"), "no fresh data (it answered null)"),
        (SOE, Answer("TIMEOUT!"), "no answer from the Powerwall (it answered TIMEOUT!)"),
        (SOE, Answer("ERROR!"), "no answer from the Powerwall (it answered ERROR!)"),
        (SOE, Answer('{"error": "Invalid Request"}'), "the proxy answered an error: 'Invalid Request'"),
        (SOE, Answer("<html><body>Tesla</body></html>", content_type="text/html"), "a web page, not JSON"),
        (SOE, Answer('{"percentage": 72.6'), "not JSON: '{\"percentage\": 72.6'"),
        (SOE, Answer("[72.6]"), "not a JSON object"),
        (SOE, Answer("Internal Server Error", status=500, content_type="text/plain"), "HTTP 500"),
        (SOE, Answer('{"percentage": 140}'), "140 is not a charge of 0-100 %"),
        (SOE, Answer('{"percentage": NaN}'), "nan is not a charge"),
        (SOE, Answer('{"percentage": null, "raw_percentage": null}'), "raw_percentage is null: the proxy has no"),
        (SOE, Answer('{"percentage": null}'), "percentage is null: the proxy has no fresh charge"),
        (GRID, Answer("null"), "grid_status: the proxy has no fresh data"),
        # pypowerwall-server while it has no data from the gateway: not OB
        (GRID, Answer('{"grid_status": "Unknown", "grid_services_active": null}'), "'Unknown' is not a grid state"),
        (GRID, Answer('{"grid_status": "UP"}'), "'UP' is not a grid state"),  # pyPowerwall's word, not the gateway's
        (GRID, Answer('{"grid_services_active": false}'), "grid_status None is not a grid state"),
        (AGGREGATES, Answer("null"), "/aggregates: the proxy has no fresh data"),
        (AGGREGATES, Answer('{"site": {"instant_power": 0}}'), "/aggregates: no load meter"),
        (AGGREGATES, Answer("Not Found", content_type="text/plain"), "not JSON: 'Not Found'"),
    ],
)
async def test_a_bad_answer_is_a_failed_poll_never_data(
    proxy: FakeProxy, path: str, answer: Answer, reason: str
) -> None:
    proxy.answers[path] = answer
    snapshot = await poll(proxy.url, retries=False)
    assert snapshot.comms is not Comms.OK and dict(snapshot.variables) == {}
    assert isinstance(snapshot.error, ProtocolError)
    assert reason in str(snapshot.error)
    assert str(snapshot.error).startswith(f"pyPowerwall proxy at {proxy.url}: {path}")


async def test_a_bad_meter_value_is_a_failed_poll(proxy: FakeProxy) -> None:
    proxy.change(AGGREGATES, {"load.instant_power": None})  # pyPowerwall passes a data gap on as null
    with pytest.raises(ProtocolError, match="the load meter's instant_power is None"):
        async with PowerwallSource(proxy.url, timeout=1.0) as source:
            await source.read()


async def test_a_hanging_proxy_fails_within_the_timeout(proxy: FakeProxy) -> None:
    proxy.hang.add(AGGREGATES)
    snapshot = await poll(proxy.url, source_timeout=0.3, interval=1.0)
    assert snapshot.comms is not Comms.OK
    assert "within 0.3 s" in str(snapshot.error)  # the source's timeout ended it, not the poll's deadline


async def test_a_closed_port_is_a_failed_poll() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    snapshot = await poll(url, retries=False)
    assert snapshot.comms is not Comms.OK
    assert isinstance(snapshot.error, SourceError) and "ConnectError" in str(snapshot.error)
    assert str(snapshot.error).startswith(f"pyPowerwall proxy at {url}: /stats")


async def test_a_password_in_the_url_stays_out_of_messages() -> None:
    url = f"http://me:hunter2@127.0.0.1:{free_port()}"
    snapshot = await poll(url, retries=False)
    assert "hunter2" not in str(snapshot.error) and "me:***@" in str(snapshot.error)


# --- the cache rule ---


async def test_polls_sooner_than_the_proxy_refreshes_repeat_its_last_answer(proxy: FakeProxy) -> None:
    clock = Clock()
    async with PowerwallSource(proxy.url, timeout=1.0, clock=clock) as source:
        first = await source.read()
        proxy.play("off-grid")  # the proxy would only serve this once its cache expires
        clock.now += 3
        second = await source.read()
        assert second.on_line is True and second.battery_charge == first.battery_charge
        assert second.time > first.time  # fresh: the port file keeps being refreshed on schedule
        assert proxy.hits[SOE] == proxy.hits[GRID] == proxy.hits[AGGREGATES] == 1
        clock.now += 2  # 5 s after the first request: the proxy's cache has expired
        third = await source.read()
        assert third.on_line is False and third.battery_charge == 55
        assert proxy.hits[SOE] == 2


async def test_a_failure_is_not_asked_again_before_the_cache_refreshes(proxy: FakeProxy) -> None:
    clock = Clock()
    async with PowerwallSource(proxy.url, timeout=1.0, clock=clock) as source:
        proxy.answers[SOE] = Answer("null")
        with pytest.raises(ProtocolError, match="no fresh data"):
            await source.read()
        proxy.play("on-grid")
        clock.now += 1
        with pytest.raises(ProtocolError, match=r"no fresh data.*not asked again until its 5 s cache refreshes"):
            await source.read()
        assert proxy.hits[SOE] == 1
        clock.now += 4
        assert (await source.read()).battery_charge == 72.6
        assert proxy.hits[SOE] == 2


async def test_reset_reads_the_device_info_again_but_not_the_data(proxy: FakeProxy) -> None:
    clock = Clock()
    async with PowerwallSource(proxy.url, timeout=1.0, clock=clock) as source:
        await source.read()
        await source.reset()  # SIGHUP
        assert source.info is None
        clock.now += 1
        assert (await source.read()).battery_charge == 72.6 and source.info is not None
        assert (proxy.hits["/stats"], proxy.hits[SOE]) == (2, 1)


async def test_one_connection_carries_every_request(proxy: FakeProxy) -> None:
    async with PowerwallSource(proxy.url, timeout=1.0) as source:
        await source.read()
    assert sum(proxy.hits.values()) == 6  # /stats, /version, /api/system_status; then the poll's three
    assert len(proxy.peers) == 1


# --- the table ---


def test_only_nut_names_or_experimental() -> None:
    names = {line.strip() for line in NAMES_FILE.read_text().splitlines() if line and not line.startswith("#")}
    unknown = [v.name for v in TABLE if v.name not in names and not v.name.startswith("experimental.")]
    assert unknown == []
    assert len({v.name for v in TABLE}) == len(TABLE)


def test_settings_are_what_a_person_may_set() -> None:
    assert setting_names(TABLE) >= {"battery.charge.low", "ups.mfr", "ups.model", "device.mfr", "device.model"}
    assert "battery.charge" not in setting_names(TABLE) and "ups.status" not in setting_names(TABLE)


# --- the command line ---


async def test_single_poll_from_the_command_line_writes_the_port_file(proxy: FakeProxy, port_file: Path) -> None:
    conf = port_file.with_name("powerwall.toml")
    conf.write_text(
        f'[source]\nkind = "powerwall"\nurl = "{proxy.url}"\ntimeout = 2\n'
        f'[nut]\nport_file = "{port_file}"\nversion = "2.8.1"\ndriver_restart_command = ""\n'
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nutbridge",
        "-c",
        str(conf),
        "-s",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    text = port_file.read_text()
    assert text.startswith("# written by hand\nbattery.charge.low: 25\n")  # kept, and used for LB and runtime
    values = parse_values(text)
    assert values["ups.status"] == "OL CHRG"
    assert values["battery.charge"] == "73"
    assert values["battery.runtime"] == "40550"  # 47.6 % (down to the hand-set 25 %) of 26.74 kWh at 1130 W
    assert (values["input.realpower"], values["output.realpower"]) == ("-580.0", "1130.0")
    assert values["experimental.pv.realpower"] == "4210.0"
    assert (values["ups.mfr"], values["ups.model"], values["device.mfr"]) == ("Tesla", "Powerwall", "Tesla")
    assert "Traceback" not in stderr.decode()
