"""MQTT with Home Assistant discovery: every poll as one JSON state message, entities announced retained.

Topics (``P`` = ``[mqtt] topic_prefix``, ``D`` = ``discovery_prefix``, ``N`` = ``node_id``, by default the
UPS name):

- ``P/N/state``: retained JSON, one object per poll: comms, status flags, the reading's values (the last
  good ones while the device is silent) and the NUT variables.
- ``P/N/availability``: retained ``online`` once connected; the broker's last will makes it ``offline``
  when nutbridge vanishes, and a clean shutdown publishes ``offline`` itself.
- ``D/sensor/N/<key>/config`` and ``D/binary_sensor/N/<key>/config``: retained discovery configs, all under
  one device, announced after each connect, whenever a new value appears, and again whenever Home
  Assistant's ``D/status`` says ``online``. A sensor is announced once its value has been seen, so a
  charge controller shows no grid sensors and a gateway no load terminals.

Entities go unavailable when nutbridge is offline or the device's comms are lost (an availability list:
the availability topic and a template on the state's ``comms``); the comms entity itself stays available.

The client loop runs in a background task while the feed is entered: ``update`` only keeps the newest
snapshot and wakes it, so the poll never waits for the broker. When the broker goes away the loop
reconnects with capped exponential backoff and jitter, logging once per outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import secrets
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Self

import aiomqtt

from nutbridge.config_sections import MqttConfig
from nutbridge.errors import ConfigError
from nutbridge.feeds.mqtt_discovery import (
    ENTITIES,
    device_block,
    discovery_configs,
    entities_present,
    family_entities,
)
from nutbridge.redact import redact_url
from nutbridge.sinks import Wants
from nutbridge.snapshot import Comms, Snapshot
from nutbridge.snapshot_json import reading_json
from nutbridge.tasks import Background

log = logging.getLogger(__name__)

ONLINE = "online"
OFFLINE = "offline"
RETRY_INITIAL = 1.0  # seconds before the first reconnect; doubles per failed attempt
RETRY_MAX = 60.0  # the cap of the backoff
CLOSE_TIMEOUT = 3.0  # seconds a clean shutdown may take to say "offline" before the loop is cancelled
TIMEOUT = 10.0  # seconds for the CONNACK and each acknowledgement
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True, kw_only=True)
class Broker:
    """Where and how to connect, from ``[mqtt] url``; the password never reaches ``repr``."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> Broker:
        """``mqtt://[user:password@]host[:port]`` or ``mqtts://…`` (TLS, system CAs)."""
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:
            raise ConfigError(f"[mqtt] url {redact_url(url)}: not mqtt://[user:password@]host[:port]") from None
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ConfigError(f"[mqtt] url {redact_url(url)}: not mqtt://[user:password@]host[:port]")
        unquote = urllib.parse.unquote
        return cls(
            host=parts.hostname,
            port=port or DEFAULT_PORTS[parts.scheme],
            tls=parts.scheme == "mqtts",
            username=None if parts.username is None else unquote(parts.username),
            password=None if parts.password is None else unquote(parts.password),
        )


class MqttFeed:
    """A sink that mirrors every snapshot to an MQTT broker; enter it to run its client loop.

    ``async with MqttFeed(config, name) as feed:`` connects in the background (a broker that is down delays
    nothing); ``await feed.update(snapshot)`` returns at once. Leaving the block publishes ``offline`` and
    disconnects.
    """

    wants: ClassVar[Wants] = Wants.NEWEST

    def __init__(
        self,
        config: MqttConfig,
        name: str,
        *,
        retry_initial: float = RETRY_INITIAL,
        retry_max: float = RETRY_MAX,
    ) -> None:
        if config.url is None:
            raise ConfigError("[mqtt] url is not set")
        self._url = config.url
        self.broker = Broker.parse(config.url)
        self.name = name
        self.node_id = config.node_id or "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64]
        self.keepalive = max(1, round(config.keepalive))
        base = f"{config.topic_prefix}/{self.node_id}"
        self.state_topic = f"{base}/state"
        self.availability_topic = f"{base}/availability"
        self.discovery_prefix = config.discovery_prefix
        self.status_topic = f"{config.discovery_prefix}/status"
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.connected = asyncio.Event()  # set while a session is up (for tests and /stats)
        self._tls: ssl.SSLContext | None = None
        if self.broker.tls:
            self._tls = ssl.create_default_context()
            self._tls.sslsocket_class = _ClosingSSLSocket
        self._latest: Snapshot | None = None
        self._last_good: Snapshot | None = None
        self._seen: set[str] = {"comms"}  # keys of the entities announced or to announce
        self._entities = {e.key: e for e in ENTITIES}  # and a family's own, as its readings show them
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._reannounce = False
        self._task: asyncio.Task[None] | None = None
        self._background: Background | None = None

    def __str__(self) -> str:
        return f"MQTT {redact_url(self._url)}"

    # -- the sink ---------------------------------------------------------------------------------------

    async def update(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` for the client loop; never waits for the broker."""
        self._latest = snapshot
        if snapshot.ok:
            self._last_good = snapshot
            if snapshot.reading is not None:
                for entity in family_entities(snapshot.reading):
                    self._entities.setdefault(entity.key, entity)
            self._seen.update(entities_present(snapshot))
        self._wake.set()

    # -- the client loop --------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._stop.clear()
        self._background = await Background().__aenter__()  # left in close(), in the task that entered
        self._task = self._background.start(self._run(), name=f"nutbridge.mqtt.{self.node_id}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Say ``offline``, disconnect and stop the loop; cancels it after ``CLOSE_TIMEOUT`` seconds."""
        task, self._task = self._task, None
        background, self._background = self._background, None
        if task is None or background is None:
            return
        self._stop.set()
        self._wake.set()
        _, pending = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT)
        if pending:
            log.warning("%s: could not say offline within %g s", self, CLOSE_TIMEOUT)
        await background.__aexit__(None, None, None)  # cancels the loop if it still runs, and waits for it

    async def _run(self) -> None:
        """Connect, serve, and after a failure wait and connect again, until ``close``."""
        attempt = 0
        outage: float | None = None  # when the present outage began
        while not self._stop.is_set():
            failure: BaseException | None = None
            up = False
            try:
                async with self._client() as client:
                    up = True
                    if outage is not None:
                        log.warning("%s: connected again after %.0f s", self, time.monotonic() - outage)
                    else:
                        log.info("%s: connected as %s", self, self.node_id)
                    attempt, outage = 0, None
                    await self._serve(client)
            except* aiomqtt.MqttError as group:
                failure = group.exceptions[0]
            except* Exception as group:  # a bug here must not end the feed, nor the daemon
                failure = group.exceptions[0]
                if outage is None:
                    log.error("%s: unexpected %s", self, type(failure).__name__, exc_info=failure)
            finally:
                self.connected.clear()
            if self._stop.is_set():
                break
            if outage is None:
                outage = time.monotonic()
                what = "connection lost" if up else "cannot connect"
                log.warning(
                    "%s: %s: %s; retrying with backoff up to %g s", self, what, _describe(failure), self.retry_max
                )
            else:
                log.debug("%s: attempt %d failed: %s", self, attempt, _describe(failure))
            delay = min(self.retry_max, self.retry_initial * 2 ** min(attempt, 32))  # no float overflow in a week
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay * random.uniform(0.5, 1.0))
        log.debug("%s: stopped", self)

    def _client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.broker.username,
            password=self.broker.password,
            identifier=f"nutbridge-{secrets.token_hex(4)}",
            logger=logging.getLogger(f"{__name__}.client"),
            will=aiomqtt.Will(self.availability_topic, OFFLINE, qos=1, retain=True),
            keepalive=self.keepalive,
            timeout=TIMEOUT,
            tls_context=self._tls,
        )

    async def _serve(self, client: aiomqtt.Client) -> None:
        """One session: online, announce, then publish each new snapshot; ``offline`` on close."""
        await client.subscribe(self.status_topic, qos=1)
        await client.publish(self.availability_topic, ONLINE, qos=1, retain=True)
        self.connected.set()
        announced: dict[str, str] = {}  # topic → config published in this session
        sent: int | None = None  # seq of the last state published in this session
        async with asyncio.TaskGroup() as tg:
            listener = tg.create_task(self._listen(client))
            self._wake.set()
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._stop.is_set():
                    await client.publish(self.availability_topic, OFFLINE, qos=1, retain=True)
                    break
                if self._reannounce:
                    self._reannounce = False
                    announced.clear()
                for topic, payload in self.discovery().items():
                    if announced.get(topic) != payload:
                        await client.publish(topic, payload, qos=1, retain=True)
                        announced[topic] = payload
                snapshot = self._latest
                if snapshot is not None and snapshot.seq != sent:
                    await client.publish(self.state_topic, self.state(snapshot), qos=0, retain=True)
                    sent = snapshot.seq
            listener.cancel()

    async def _listen(self, client: aiomqtt.Client) -> None:
        """Home Assistant's birth message (``online`` on its status topic): announce everything again."""
        async for message in client.messages:
            # a retained "online" comes with the subscription, right after this session announced anyway
            if message.retain or message.payload not in (ONLINE, ONLINE.encode()):
                continue
            log.info("%s: Home Assistant is online; announcing again", self)
            self._reannounce = True
            self._wake.set()

    # -- payloads ---------------------------------------------------------------------------------------

    def state(self, snapshot: Snapshot) -> str:
        """The state message: this poll's comms, and the last good poll's values while the device is silent."""
        good = snapshot if snapshot.ok else self._last_good
        power = None if good is None else good.power
        reading = None if good is None else good.reading
        message = {
            "seq": snapshot.seq,
            "time": snapshot.time,
            "comms": snapshot.comms.value,
            "comms_ok": snapshot.comms is not Comms.LOST,
            "failures": snapshot.failures,
            "last_good": snapshot.last_good,
            "status": None if good is None else good.variables.get("ups.status"),
            "on_battery": None if power is None else not power.on_line,
            "low_battery": None if power is None else power.low,
            "reading": reading_json(reading),
            "nut": {} if good is None else {k: v for k, v in good.variables.items() if v is not None},
        }
        return json.dumps(message, separators=(",", ":"), allow_nan=False)

    def device(self) -> dict[str, Any]:
        """The device block every entity shares."""
        return device_block(self.name, self.node_id, None if self._last_good is None else self._last_good.info)

    def discovery(self) -> dict[str, str]:
        """Topic → retained config (JSON) of every entity seen so far."""
        return discovery_configs(
            self._seen,
            entities=self._entities.values(),
            node_id=self.node_id,
            prefix=self.discovery_prefix,
            state_topic=self.state_topic,
            availability_topic=self.availability_topic,
            device=self.device(),
        )


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when the handshake fails: paho leaves that socket open (a refused certificate, each retry)."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def _describe(exc: BaseException | None) -> str:
    """One line for a failed session: aiomqtt's message and, where it has one, the cause beneath it."""
    if exc is None:
        return "disconnected"
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    return f"{text} ({cause})" if cause is not None and str(cause) else text
