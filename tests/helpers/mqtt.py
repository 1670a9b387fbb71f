"""A real Mosquitto on a loopback port, and a client playing Home Assistant: what the MQTT tests and the
broker faults use."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt

from nutbridge.config_sections import MqttConfig
from nutbridge.feeds.mqtt import MqttFeed
from nutbridge.model import ChargeStage, DeviceInfo, Reading
from nutbridge.power import PowerState
from nutbridge.snapshot import Comms, Snapshot
from tests.conftest import need

TIMEOUT = 5.0  # for anything that should take well under a second


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
