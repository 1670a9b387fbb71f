"""The MQTT feed against a real Mosquitto on loopback: discovery, state, availability, the last will,
Home Assistant's birth message, a broker restart, a password, TLS.

Each test starts its own mosquitto (Debian's package) on 127.0.0.1 on a free port, with a config file in
tmp, and stops it by PID. A second aiomqtt client plays Home Assistant.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from nutbridge.feeds.mqtt import MqttFeed
from nutbridge.snapshot import Comms
from tests.conftest import daemon_config, need
from tests.helpers.mqtt import (
    AVAILABILITY,
    NODE,
    STATE,
    TIMEOUT,
    Mosquitto,
    collect,
    config,
    everything,
    mosquitto,
    snapshot,
    text,
    watcher,
)

PASSWORD = "s3cret-Pa55"  # the auth test's own broker


async def next_message(client: aiomqtt.Client, topic: str, test: Callable[[aiomqtt.Message], bool]) -> aiomqtt.Message:
    """The next message on ``topic`` that passes ``test``."""
    async with asyncio.timeout(TIMEOUT):
        async for message in client.messages:
            if message.topic.matches(topic) and test(message):
                return message
    raise AssertionError("unreachable")


async def test_discovery_state_and_availability(broker: Mosquitto) -> None:
    async with MqttFeed(config(broker.port), NODE) as feed:
        assert str(feed) == f"MQTT mqtt://127.0.0.1:{broker.port}"
        await feed.update(snapshot(1))
        async with watcher(broker.port, "homeassistant/#", "nutbridge/#") as early:
            await collect(early, everything(feed))  # all published (some of it live)
        async with watcher(broker.port, "homeassistant/#", "nutbridge/#") as ha:
            seen = await collect(ha, everything(feed))
            assert all(m.retain for m in seen.values()), "a new subscriber gets everything retained"
            assert text(seen[AVAILABILITY]) == "online"

            configs = {t: json.loads(text(m)) for t, m in seen.items() if t.endswith("/config")}
            by_key = {c["unique_id"].removeprefix(f"nutbridge_{NODE}_"): c for c in configs.values()}
            for topic, c in configs.items():
                component, node, key = topic.split("/")[1:4]
                assert component in ("sensor", "binary_sensor") and node == NODE
                assert c["unique_id"] == f"nutbridge_{NODE}_{key}"
                assert c["state_topic"] == STATE
                assert c["device"] == {
                    "identifiers": [f"nutbridge_{NODE}"],
                    "name": NODE,
                    "manufacturer": "EPEver",
                    "model": "Tracer2215BN",
                    "sw_version": "V02.05+V07.12",
                    "serial_number": "TR-0001",
                }
                assert c["origin"]["name"] == "nutbridge"
                assert {"topic": AVAILABILITY} in c["availability"]
            assert len({c["unique_id"] for c in configs.values()}) == len(configs)

            def shape(key: str) -> tuple[Any, ...]:
                c = by_key[key]
                return c.get("device_class"), c.get("state_class"), c.get("unit_of_measurement")

            assert shape("pv_power") == shape("load_power") == ("power", "measurement", "W")
            assert shape("battery_voltage") == shape("pv_voltage") == ("voltage", "measurement", "V")
            assert shape("battery_current") == shape("pv_current") == ("current", "measurement", "A")
            assert shape("battery_charge") == ("battery", "measurement", "%")
            assert shape("energy_generated_total") == ("energy", "total_increasing", "kWh")
            assert shape("energy_generated_today") == ("energy", None, "kWh")
            assert shape("runtime") == ("duration", "measurement", "s")
            assert shape("battery_temperature") == ("temperature", "measurement", "°C")
            assert by_key["battery_temperature"]["entity_category"] == "diagnostic"
            assert by_key["charge_stage"]["options"] == ["off", "float", "boost", "equalize"]
            assert shape("low_battery")[0] == "battery" and shape("comms")[0] == "connectivity"
            assert "on_battery" in by_key
            # nothing the reading lacks: no controller temperature, no consumed-today counter, no alarm
            assert not {"controller_temperature", "energy_consumed_today", "alarm"} & by_key.keys()
            # the comms entity stays available when the device is lost; the others grey out
            assert by_key["comms"]["availability"] == [{"topic": AVAILABILITY}]
            assert len(by_key["pv_power"]["availability"]) == 2

            state = json.loads(text(seen[STATE]))
            assert state["seq"] == 1 and state["comms"] == "ok" and state["comms_ok"] is True
            assert state["reading"]["pv_power"] == 312.5 and state["reading"]["charge_stage"] == "boost"
            assert state["reading"]["controller_temperature"] is None
            assert state["nut"] == {"ups.status": "OL CHRG", "battery.charge": "70", "battery.runtime": "172800"}
            assert state["status"] == "OL CHRG" and state["on_battery"] is False and state["low_battery"] is False

            # a lost device: this poll's comms with the last good values
            await feed.update(snapshot(2, comms=Comms.LOST))
            state = json.loads(text(await next_message(ha, STATE, lambda m: json.loads(text(m))["seq"] == 2)))
            assert state["comms"] == "lost" and state["comms_ok"] is False
            assert state["reading"]["pv_power"] == 312.5

            # the templates HA renders, as Jinja would: the values are where value_template looks
            assert by_key["pv_power"]["value_template"] == "{{ value_json.reading.pv_power }}"
            assert by_key["runtime"]["value_template"] == "{{ value_json.nut.get('battery.runtime') }}"
        # leaving the block: offline, and retained
    async with watcher(broker.port, AVAILABILITY) as ha:
        message = await next_message(ha, AVAILABILITY, lambda m: True)
        assert message.retain and text(message) == "offline"


async def test_update_never_waits_for_the_broker(broker: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    broker.stop()
    async with MqttFeed(config(broker.port), NODE, retry_initial=0.05) as feed:
        for seq in range(1, 101):  # each update ends at its first step: it never suspends, whatever the broker
            step = feed.update(snapshot(seq)).send
            with pytest.raises(StopIteration):
                step(None)
        await asyncio.sleep(0.3)  # a few failed attempts
        assert not feed.connected.is_set()
    outages = [r for r in caplog.records if r.name == "nutbridge.feeds.mqtt" and r.levelno >= logging.WARNING]
    assert len(outages) == 1, [r.getMessage() for r in outages]
    assert "retrying with backoff up to 60 s" in outages[0].getMessage()


async def test_last_will_when_the_process_dies(broker: Mosquitto) -> None:
    script = (
        "import asyncio, sys\n"
        "from nutbridge.config_sections import MqttConfig\n"
        "from nutbridge.feeds.mqtt import MqttFeed\n"
        "async def main():\n"
        "    async with MqttFeed(MqttConfig(url=sys.argv[1], node_id='solar'), 'solar') as feed:\n"
        "        await feed.connected.wait()\n"
        "        print('connected', flush=True)\n"
        "        await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    url = f"mqtt://127.0.0.1:{broker.port}"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, url, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 15) == b"connected\n"
        async with watcher(broker.port, AVAILABILITY) as ha:
            online = await next_message(ha, AVAILABILITY, lambda m: True)
            assert online.retain and text(online) == "online"
            proc.kill()  # no DISCONNECT: the broker sends the will
            offline = await next_message(ha, AVAILABILITY, lambda m: True)
            assert text(offline) == "offline"
        async with watcher(broker.port, AVAILABILITY) as ha:
            retained = await next_message(ha, AVAILABILITY, lambda m: True)
            assert retained.retain and text(retained) == "offline"
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def test_announces_again_when_home_assistant_comes_online(broker: Mosquitto) -> None:
    async with MqttFeed(config(broker.port), NODE) as feed:
        await feed.update(snapshot(1))
        async with watcher(broker.port, "homeassistant/#", "nutbridge/#") as early:
            await collect(early, everything(feed))  # all published (some of it live)
        async with watcher(broker.port, "homeassistant/+/solar/+/config") as ha:
            configs = feed.discovery().keys()
            first = await collect(ha, lambda seen: configs <= seen.keys())
            assert all(m.retain for m in first.values())
            await ha.publish("homeassistant/status", "offline")
            await ha.publish("homeassistant/status", "online")
            again = await collect(ha, lambda seen: len(seen) == len(first) and not any(m.retain for m in seen.values()))
            assert {t: text(m) for t, m in again.items()} == {t: text(m) for t, m in first.items()}


async def test_reconnects_after_a_broker_restart(broker: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with MqttFeed(config(broker.port), NODE, retry_initial=0.05) as feed:
        await feed.update(snapshot(1))
        await asyncio.wait_for(feed.connected.wait(), TIMEOUT)
        await asyncio.to_thread(broker.stop)
        await feed.update(snapshot(2))  # while the broker is away: kept, published after the reconnect
        await asyncio.sleep(0.5)  # several failed attempts, one warning
        await asyncio.to_thread(broker.start)  # same port, nothing retained (persistence false)
        async with watcher(broker.port, "homeassistant/#", "nutbridge/#") as ha:
            seen = await collect(ha, everything(feed))
            assert json.loads(text(seen[STATE]))["seq"] == 2
            assert text(seen[AVAILABILITY]) == "online"
            await feed.update(snapshot(3, pv_power=100.0))
            state = json.loads(text(await next_message(ha, STATE, lambda m: True)))
            assert state["seq"] == 3 and state["reading"]["pv_power"] == 100.0
    ours = [r.getMessage() for r in caplog.records if r.name == "nutbridge.feeds.mqtt" and r.levelno >= logging.WARNING]
    assert len(ours) == 2, ours
    assert "retrying with backoff" in ours[0] and "connected again after" in ours[1]
    assert sum("failed" in r.getMessage() for r in caplog.records if r.name == "nutbridge.feeds.mqtt") >= 1


async def test_password_from_the_url_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    need(shutil.which("mosquitto_passwd") is not None, "mosquitto_passwd (Debian's mosquitto)")
    passwords = tmp_path / "passwords"
    command = ["mosquitto_passwd", "-b", "-c", str(passwords), "nut", PASSWORD]
    await asyncio.to_thread(subprocess.run, command, check=True, timeout=10)
    with mosquitto(tmp_path, ["allow_anonymous false", f"password_file {passwords}"]) as broker:
        wrong = MqttFeed(config(broker.port, userinfo="nut:wrong-Pa55@"), NODE, retry_initial=0.05)
        async with wrong:
            await asyncio.sleep(0.3)
            assert not wrong.connected.is_set()
        refused = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(refused) == 1 and "not authorized" in refused[0].lower(), refused

        feed = MqttFeed(config(broker.port, userinfo=f"nut:{PASSWORD}@"), NODE)
        assert str(feed) == f"MQTT mqtt://nut:***@127.0.0.1:{broker.port}"
        assert PASSWORD not in repr(feed.broker)
        async with feed:
            await feed.update(snapshot(1))
            async with watcher(broker.port, STATE, username="nut", password=PASSWORD) as ha:
                state = await next_message(ha, STATE, lambda m: True)
                assert json.loads(text(state))["seq"] == 1
    assert caplog.records
    assert PASSWORD not in caplog.text and "wrong-Pa55" not in caplog.text


async def test_mqtts_verifies_the_broker(
    tmp_path: Path, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = certificate
    with mosquitto(tmp_path, ["allow_anonymous true", f"certfile {cert}", f"keyfile {key}"]) as broker:
        # a self-signed broker is refused, once in the log, without crashing anything
        async with MqttFeed(config(broker.port, scheme="mqtts"), NODE, retry_initial=0.05) as untrusted:
            await asyncio.sleep(0.3)
            assert not untrusted.connected.is_set()
        refused = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(refused) == 1 and "CERTIFICATE_VERIFY_FAILED" in refused[0], refused
        # system CAs, as OpenSSL finds them: SSL_CERT_FILE points it at the test's own certificate
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        async with MqttFeed(config(broker.port, scheme="mqtts"), NODE) as feed:
            await feed.update(snapshot(1))
            client_tls = ssl.create_default_context(cafile=cert)
            async with watcher(broker.port, STATE, tls_context=client_tls) as ha:
                state = await next_message(ha, STATE, lambda m: True)
                assert json.loads(text(state))["seq"] == 1


async def test_the_daemon_publishes_its_polls(broker: Mosquitto, tmp_path: Path) -> None:
    toml = daemon_config(tmp_path, f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\n')
    async with watcher(broker.port, "nutbridge/solar/#") as client:
        daemon = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nutbridge", "-c", str(toml), stderr=asyncio.subprocess.PIPE
        )
        try:
            state = await next_message(client, "nutbridge/solar/state", lambda m: '"ok"' in text(m))
            assert json.loads(text(state))["nut"]["ups.status"].startswith("OL")
        finally:
            daemon.terminate()
            _, err = await daemon.communicate()
        assert daemon.returncode == 0, err.decode()
        await next_message(client, "nutbridge/solar/availability", lambda m: text(m) == "offline")
    async with watcher(broker.port, "nutbridge/solar/availability") as later:  # what a new subscriber is told
        offline = await next_message(later, "nutbridge/solar/availability", lambda m: True)
        assert text(offline) == "offline" and offline.retain
