"""The JSON view of a snapshot, as a user of each consumer sees it: a Powerwall's own meters (grid and battery
power, which the shared Reading has no fields for) reach the JSON API, a pub/sub subscriber, the MQTT state and
Home Assistant's discovery, and /metrics. A real poll of the fake pyPowerwall proxy over loopback, a real
sidecar, a real WebSocket client and a real Mosquitto; the expected watts come from the proxy's recorded answer."""

from __future__ import annotations

import json
from pathlib import Path

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
from nutbridge.snapshot import Snapshot
from tests.helpers import until
from tests.helpers.envoy import SERIAL
from tests.helpers.mqtt import NODE, STATE, collect, config, mosquitto, text, watcher
from tests.helpers.powerwall import fixture, serving
from tests.helpers.schema import validate

KEY = "correct horse battery staple"
AGGREGATES = fixture("on-grid")["/aggregates"]
GRID_WATTS = AGGREGATES["site"]["instant_power"]  # the grid meter: − exporting (a sunny afternoon)
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


async def test_a_gateways_meters_are_in_the_api_as_its_openapi_document_says(tmp_path: Path) -> None:
    gateway = FixtureGateway(
        {}, serial=SERIAL, login_url="https://login.test/login.json?", token_url="https://t.test/t"
    )
    tokens = TokenCache(tmp_path / "t.token", serial=SERIAL, username="u", password="p", login_url=gateway.login_url,
                        token_url=gateway.token_url, transport=gateway.transport, min_renew_interval=0)  # fmt: skip
    async with EnvoySource(
        "envoy.test", serial=SERIAL, tokens=tokens, timeout=10, transport=gateway.transport
    ) as source:
        snapshot = await Monitor(source, interval=10.0, grace=10.0).poll()
    assert snapshot.ok
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
