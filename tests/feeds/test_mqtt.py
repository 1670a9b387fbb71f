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
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from nutbridge.config import MqttConfig
from nutbridge.feeds.mqtt import MqttFeed
from nutbridge.model import ChargeStage, DeviceInfo, Reading
from nutbridge.nut.status import PowerState
from nutbridge.snapshot import Comms, Snapshot
from tests.conftest import daemon_config, need

TIMEOUT = 5.0  # for anything that should take well under a second
PASSWORD = "s3cret-Pa55"  # the auth test's own broker
NODE = "solar"
STATE = f"nutbridge/{NODE}/state"
AVAILABILITY = f"nutbridge/{NODE}/availability"


class Mosquitto:
    """One mosquitto process on 127.0.0.1:``port``, configured by ``extra`` lines; start and stop by PID."""

    def __init__(self, folder: Path, extra: list[str]) -> None:
        self.folder = folder
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.conf = folder / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr", *extra]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to user mosquitto, who cannot read the files in tmp
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.folder / "mosquitto.log").open("ab") as log_file:
            self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(self.folder / 'mosquitto.log').read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not listen")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def mosquitto(folder: Path, extra: list[str]) -> Iterator[Mosquitto]:
    need(shutil.which("mosquitto") is not None, "Debian's mosquitto (the MQTT broker)")
    broker = Mosquitto(folder, extra)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """An anonymous mosquitto on a free loopback port."""
    with mosquitto(tmp_path, ["allow_anonymous true"]) as b:
        yield b


@contextlib.asynccontextmanager
async def watcher(port: int, *topics: str, **kwargs: Any) -> AsyncIterator[aiomqtt.Client]:
    """A client playing Home Assistant, subscribed to ``topics``."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"watcher-{os.getpid()}", **kwargs) as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        yield client


async def collect(
    client: aiomqtt.Client, done: Callable[[dict[str, aiomqtt.Message]], bool]
) -> dict[str, aiomqtt.Message]:
    """Messages by topic (the newest each) until ``done`` says so."""
    seen: dict[str, aiomqtt.Message] = {}
    async with asyncio.timeout(TIMEOUT):
        async for message in client.messages:
            seen[str(message.topic)] = message
            if done(seen):
                return seen
    raise AssertionError("unreachable")


async def next_message(client: aiomqtt.Client, topic: str, test: Callable[[aiomqtt.Message], bool]) -> aiomqtt.Message:
    """The next message on ``topic`` that passes ``test``."""
    async with asyncio.timeout(TIMEOUT):
        async for message in client.messages:
            if message.topic.matches(topic) and test(message):
                return message
    raise AssertionError("unreachable")


def text(message: aiomqtt.Message) -> str:
    assert isinstance(message.payload, bytes)
    return message.payload.decode()


def config(port: int, *, scheme: str = "mqtt", userinfo: str = "") -> MqttConfig:
    return MqttConfig(url=f"{scheme}://{userinfo}127.0.0.1:{port}", node_id=NODE)


def snapshot(seq: int, *, comms: Comms = Comms.OK, pv_power: float = 312.5) -> Snapshot:
    """A good poll of a Tracer in the sun, or (comms not OK) a failed one."""
    if comms is not Comms.OK:
        return Snapshot(seq=seq, time=1.7e9 + seq, comms=comms, variables={}, failures=3, last_good=1.7e9)
    reading = Reading(
        time=1.7e9 + seq,
        battery_charge=70.0,
        battery_voltage=13.21,
        battery_current=4.5,
        battery_temperature=24.5,
        pv_voltage=38.2,
        pv_current=8.18,
        pv_power=pv_power,
        load_voltage=13.2,
        load_current=1.0,
        load_power=13.2,
        charge_stage=ChargeStage.BOOST,
        energy_generated_today=1.25,
        energy_generated_total=812.4,
        energy_consumed_total=301.0,
    )
    info = DeviceInfo(mfr="EPEver", model="Tracer2215BN", firmware="V02.05+V07.12", serial="TR-0001")
    power = PowerState(on_line=True, low=False, charging=True, discharging=False, alarm=False)
    variables = {"ups.status": "OL CHRG", "battery.charge": "70", "battery.runtime": "172800", "ups.alarm": None}
    return Snapshot(
        seq=seq, time=reading.time, comms=comms, reading=reading, info=info, power=power, variables=variables
    )


def everything(feed: MqttFeed) -> Callable[[dict[str, aiomqtt.Message]], bool]:
    """True once every discovery config, the availability and the state have arrived."""
    topics = {*feed.discovery(), STATE, AVAILABILITY}
    assert len(topics) == 19 + 2  # the good snapshot's 16 sensors and 3 binary sensors
    return lambda seen: topics <= seen.keys()


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
        start = time.monotonic()
        for seq in range(1, 101):
            await feed.update(snapshot(seq))
        assert time.monotonic() - start < 0.1
        await asyncio.sleep(0.3)  # a few failed attempts
        assert not feed.connected.is_set()
    outages = [r for r in caplog.records if r.name == "nutbridge.feeds.mqtt" and r.levelno >= logging.WARNING]
    assert len(outages) == 1, [r.getMessage() for r in outages]
    assert "retrying with backoff up to 60 s" in outages[0].getMessage()


async def test_last_will_when_the_process_dies(broker: Mosquitto) -> None:
    script = (
        "import asyncio, sys\n"
        "from nutbridge.config import MqttConfig\n"
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
