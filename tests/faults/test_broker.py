"""MQTT: the broker killed with SIGKILL (no clean shutdown, nothing persisted) and started again on its port.

A broker stopped with SIGTERM, a broker that is down from the start, a wrong password and a broker whose
certificate is not trusted are in test_mqtt.py."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from nutbridge.feeds.mqtt import MqttFeed
from tests.conftest import need
from tests.helpers.mqtt import (
    AVAILABILITY,
    NODE,
    STATE,
    TIMEOUT,
    collect,
    config,
    everything,
    mosquitto,
    snapshot,
    text,
    watcher,
)

USER, PASSWORD = "nut", "br0ker-Pa55"


async def test_after_the_broker_is_killed_and_restarted_the_feed_publishes_everything_again_retained(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    need(shutil.which("mosquitto_passwd") is not None, "mosquitto_passwd (Debian's mosquitto)")
    passwords = tmp_path / "passwords"
    command = ["mosquitto_passwd", "-b", "-c", str(passwords), USER, PASSWORD]
    await asyncio.to_thread(subprocess.run, command, check=True, timeout=10)

    with mosquitto(tmp_path, ["allow_anonymous false", f"password_file {passwords}"]) as broker:
        async with MqttFeed(config(broker.port, userinfo=f"{USER}:{PASSWORD}@"), NODE, retry_initial=0.05) as feed:
            await feed.update(snapshot(1))
            async with asyncio.timeout(TIMEOUT):
                await feed.connected.wait()
            assert broker.proc is not None
            broker.proc.kill()  # kill -9: the broker's sockets close under the feed, and it retains nothing
            await asyncio.to_thread(broker.proc.wait, TIMEOUT)
            broker.proc = None
            async with asyncio.timeout(TIMEOUT):
                while feed.connected.is_set():  # noqa: ASYNC110 (the feed has no event for a lost session)
                    await asyncio.sleep(0.01)
            await feed.update(snapshot(2))  # polls go on meanwhile; the newest is what the broker gets
            await feed.update(snapshot(3, pv_power=100.0))
            await asyncio.sleep(0.3)  # a few failed attempts at reconnecting
            await asyncio.to_thread(broker.start)
            async with watcher(broker.port, "homeassistant/#", "nutbridge/#", username=USER,
                                     password=PASSWORD) as early:  # fmt: skip
                await collect(early, everything(feed))  # everything published again (some of it live)
            async with watcher(broker.port, "homeassistant/#", "nutbridge/#", username=USER,
                                     password=PASSWORD) as later:  # fmt: skip
                seen = await collect(later, everything(feed))
            assert all(m.retain for m in seen.values()), "a subscriber after the restart must get it all retained"
            assert text(seen[AVAILABILITY]) == "online"
            state = json.loads(text(seen[STATE]))
            assert state["seq"] == 3 and state["reading"]["pv_power"] == 100.0
    ours = [r.getMessage() for r in caplog.records if r.name == "nutbridge.feeds.mqtt" and r.levelno >= logging.WARNING]
    assert len(ours) == 2, ours  # one line per outage, and one when it ends
    assert "connection lost" in ours[0] and "retrying with backoff" in ours[0]
    assert "connected again after" in ours[1]
    assert PASSWORD not in caplog.text
