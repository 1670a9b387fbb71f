"""The JSON view of a snapshot, as a user of each consumer sees it: a Powerwall's own meters (grid and battery
power, which the shared Reading has no fields for) reach the JSON API, a pub/sub subscriber, the MQTT state and
Home Assistant's discovery, and /metrics, with the unit its model declares; a gateway's LOADKWH setting is in the
JSON but is no sensor and no gauge. A real poll of the fake pyPowerwall proxy (and of the fixture gateway) over
loopback, a real sidecar, a real WebSocket client and a real Mosquitto; the expected watts come from the proxy's
recorded answer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from nutbridge.config_sections import PubSubConfig
from nutbridge.devices.enphase.source import EnvoySource
from nutbridge.devices.enphase.testmode import FixtureGateway
from nutbridge.devices.enphase.token import TokenCache
from nutbridge.devices.powerwall.source import PowerwallSource
from nutbridge.feeds.mqtt import MqttFeed
from nutbridge.monitor import Monitor
from nutbridge.server.app import Sidecar, make_app
from nutbridge.server.live import LiveSnapshot
from nutbridge.server.pubsub import PubSubHub
from nutbridge.snapshot import Comms, Snapshot
from tests.helpers import until
from tests.helpers.envoy import SERIAL
from tests.helpers.family import WindReading
from tests.helpers.mqtt import NODE, STATE, collect, config, mosquitto, text, watcher
from tests.helpers.powerwall import fixture, serving
from tests.helpers.schema import validate

KEY = "correct horse battery staple"
AGGREGATES = fixture("on-grid")["/aggregates"]
GRID_WATTS = AGGREGATES["site"]["instant_power"]  # the grid meter: − exporting (a sunny afternoon)
ENVOY_FIXTURES = Path(__file__).parents[1] / "test-fixtures" / "envoy"
BATTERY_WATTS = -AGGREGATES["battery"]["instant_power"]  # Tesla's meter is + discharging; ours + charging


async def powerwall_poll() -> Snapshot:
    """One poll of the proxy on a sunny afternoon, as the daemon makes it."""
    async with serving("proxy", "on-grid") as proxy, PowerwallSource(proxy.url, timeout=10.0) as source:
        snapshot = await Monitor(source, interval=10.0, grace=10.0).poll()
    assert snapshot.ok
    return snapshot


async def test_a_powerwalls_grid_power_reaches_the_api_pubsub_and_metrics(tmp_path: Path) -> None:
    assert GRID_WATTS < 0 < BATTERY_WATTS  # the fixture exports and charges: a sign lost would show
    snapshot = await powerwall_poll()
    live = LiveSnapshot(interval=10)
    hub = PubSubHub(PubSubConfig(api_key=KEY))
    async with (
        Sidecar(make_app(tmp_path, live=live, pubsub=hub), "127.0.0.1", 0) as sidecar,
        aiohttp.ClientSession() as session,
    ):
        url = f"http://127.0.0.1:{sidecar.port}"
        headers = {"X-API-Client-Name": "tester", "X-API-Key": KEY}
        async with session.ws_connect(f"{url}/subscribe", headers=headers) as ws:
            await ws.send_str(json.dumps({"action": "subscribe", "event": "reading"}))
            await until(lambda: any(s["name"] == "reading" for s in hub.info()["subscriptions"]))
            await live.update(snapshot)
            await hub.update(snapshot)
            frame = json.loads(await ws.receive_str(timeout=10))
        event = json.loads(frame["data"])  # PiCloud's data is a string: our JSON text
        assert event["reading"]["grid_power"] == GRID_WATTS
        assert event["reading"]["battery_power"] == BATTERY_WATTS

        async with session.get(f"{url}/api/status") as r:
            status = await r.json()
        assert status["reading"]["grid_power"] == GRID_WATTS
        assert status["reading"]["battery_power"] == BATTERY_WATTS
        assert status["reading"]["pv_power"] == AGGREGATES["solar"]["instant_power"]  # the shared fields stay
        assert await validate(url, "/api/status") == 200  # the answer is the one the OpenAPI document describes

        async with session.get(f"{url}/metrics") as r:
            metrics = {
                s.name: s.value for family in text_string_to_metric_families(await r.text()) for s in family.samples
            }
        assert metrics["nutbridge_grid_power_watts"] == GRID_WATTS
        assert metrics["nutbridge_battery_power_watts"] == BATTERY_WATTS
        assert metrics["nutbridge_pv_power_watts"] == AGGREGATES["solar"]["instant_power"]
        assert not any(
            name.startswith("nutbridge_grid_power") for name in metrics.keys() - {"nutbridge_grid_power_watts"}
        )


async def test_a_powerwalls_grid_power_reaches_mqtt_and_home_assistant(tmp_path: Path) -> None:
    snapshot = await powerwall_poll()
    discovery = f"homeassistant/sensor/{NODE}/%s/config"
    with mosquitto(tmp_path, ["allow_anonymous true"]) as broker:
        async with MqttFeed(config(broker.port), NODE) as feed:
            await feed.update(snapshot)
            wanted = {STATE, discovery % "grid_power", discovery % "battery_power", discovery % "pv_power"}
            async with watcher(broker.port, "homeassistant/#", "nutbridge/#") as ha:
                seen = await collect(ha, lambda seen: wanted <= seen.keys())
    state = json.loads(text(seen[STATE]))
    assert state["reading"]["grid_power"] == GRID_WATTS
    assert state["reading"]["battery_power"] == BATTERY_WATTS
    for key, name in (("grid_power", "Grid power"), ("battery_power", "Battery power")):
        entity = json.loads(text(seen[discovery % key]))
        assert entity["name"] == name
        assert entity["unique_id"] == f"nutbridge_{NODE}_{key}"
        assert entity["value_template"] == f"{{{{ value_json.reading.{key} }}}}"
        shown = (entity["device_class"], entity["state_class"], entity["unit_of_measurement"])
        assert shown == ("power", "measurement", "W")
    assert json.loads(text(seen[discovery % "pv_power"]))["unique_id"] == f"nutbridge_{NODE}_pv_power"  # kept


async def gateway_poll(tmp_path: Path, answers: Mapping[str, str | None] = MappingProxyType({})) -> Snapshot:
    """One poll of the fixture gateway (its shipped answers, or ``answers`` by name), as the daemon makes it."""
    gateway = FixtureGateway(
        answers, serial=SERIAL, login_url="https://login.test/login.json?", token_url="https://t.test/t"
    )
    tokens = TokenCache(tmp_path / "t.token", serial=SERIAL, username="u", password="p", login_url=gateway.login_url,
                        token_url=gateway.token_url, transport=gateway.transport, min_renew_interval=0)  # fmt: skip
    async with EnvoySource(
        "envoy.test", serial=SERIAL, tokens=tokens, timeout=10, transport=gateway.transport
    ) as source:
        snapshot = await Monitor(source, interval=10.0, grace=10.0).poll()
    assert snapshot.ok
    return snapshot


async def test_a_gateways_meters_are_in_the_api_as_its_openapi_document_says(tmp_path: Path) -> None:
    snapshot = await gateway_poll(tmp_path)
    live = LiveSnapshot(interval=10)
    await live.update(snapshot)
    async with Sidecar(make_app(tmp_path, live=live), "127.0.0.1", 0) as sidecar, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{sidecar.port}"
        async with session.get(f"{url}/api/status") as r:
            reading = (await r.json())["reading"]
        assert await validate(url, "/api/status") == 200
    grid = reading["grid"]  # the net-consumption meter: the cumulative row, then one per line
    assert grid and set(grid[0]) == {"watts", "va", "volts", "power_factor", "hertz"}
    assert isinstance(reading["storage"]["watts"], int | float)


async def test_a_gateways_settings_are_in_the_json_but_no_gauge_and_no_home_assistant_sensor(tmp_path: Path) -> None:
    three_phase = {name: (ENVOY_FIXTURES / f"{name}-3phase.json").read_text() for name in ("live", "reports")}
    snapshot = await gateway_poll(tmp_path, three_phase)
    live = LiveSnapshot(interval=10)
    await live.update(snapshot)
    async with Sidecar(make_app(tmp_path, live=live), "127.0.0.1", 0) as sidecar, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{sidecar.port}"
        async with session.get(f"{url}/api/status") as r:
            reading = (await r.json())["reading"]
        async with session.get(f"{url}/metrics") as r:
            gauges = {family.name for family in text_string_to_metric_families(await r.text())}
    # LOADKWH (the [source] setting the NUT load is figured with) and the site's wiring describe the site:
    # the JSON has them, but neither is a measurement
    assert reading["load_kwh"] == 768 and reading["phases"] == 3
    assert "nutbridge_pv_power_watts" in gauges
    assert not {"nutbridge_load_kwh", "nutbridge_phases"} & gauges
    with mosquitto(tmp_path, ["allow_anonymous true"]) as broker:
        async with MqttFeed(config(broker.port), NODE) as feed:
            await feed.update(snapshot)
            wanted = {STATE, *feed.discovery()}  # every retained config the feed announced, and the state
            async with watcher(broker.port, "homeassistant/#", "nutbridge/#") as ha:
                seen = await collect(ha, lambda seen: wanted <= seen.keys())
    assert json.loads(text(seen[STATE]))["reading"]["load_kwh"] == 768  # the state keeps every JSON key
    sensors = {topic.split("/")[3] for topic in seen if topic.startswith(f"homeassistant/sensor/{NODE}/")}
    assert {"pv_power", "battery_charge"} <= sensors
    assert not {"load_kwh", "phases"} & sensors


async def test_a_familys_own_quantity_is_shown_with_the_unit_its_model_declares(tmp_path: Path) -> None:
    reading = WindReading(time=1.7e9, battery_charge=73.0, wind_speed=4.5)
    snapshot = Snapshot(seq=1, time=reading.time, comms=Comms.OK, reading=reading, variables={})
    live = LiveSnapshot(interval=10)
    await live.update(snapshot)
    async with (
        Sidecar(make_app(tmp_path, live=live), "127.0.0.1", 0) as sidecar,
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{sidecar.port}/metrics") as r,
    ):
        metrics = {s.name: s.value for family in text_string_to_metric_families(await r.text()) for s in family.samples}
    assert metrics["nutbridge_wind_speed"] == 4.5  # m/s: no Prometheus unit word for it here, so none is made up
    feed = MqttFeed(config(1883), NODE)  # never entered: its retained configs, as it would announce them
    await feed.update(snapshot)
    entity = json.loads(feed.discovery()[f"homeassistant/sensor/{NODE}/wind_speed/config"])
    assert entity["name"] == "Wind speed" and entity["unit_of_measurement"] == "m/s"
    assert entity["state_class"] == "measurement" and "device_class" not in entity
