"""The consumers the daemon starts, in one ordered list (CONSUMERS): each entry builds its sink from the
configuration, or answers None when its section is off. The daemon enters every sink that is an async context
manager (a listener, a client loop, a task group), gives each a SinkRunner whose queue the sink's ``wants``
sizes, and leaves them in reverse order when it stops. No part is changed after it is built: what a builder needs
that is not in the configuration (the port file, NUT's dialect, systemd's socket) comes in the Wiring.

Adding a consumer: its module (a sink: ``wants`` and ``update``), its section in config_sections.py with one
field in Config, and one entry here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from nutbridge.config import Config
from nutbridge.errors import ConfigError
from nutbridge.sdnotify import Notifier, Systemd
from nutbridge.sinks import Sink

if TYPE_CHECKING:  # each imported where it is built: a start-up imports only the parts its config turns on
    from nutbridge.datalog.writer import DataLog
    from nutbridge.devices.load_switch import LoadSwitch
    from nutbridge.feeds.linesocket import LineSocket
    from nutbridge.feeds.mqtt import MqttFeed
    from nutbridge.nut.driver import PortFileSink
    from nutbridge.nut.driver_commands import DriverSettings
    from nutbridge.nut.driver_socket import DriverSocket
    from nutbridge.nut.portfile import PortFile
    from nutbridge.nut.version import Dialect
    from nutbridge.printer import PollPrinter
    from nutbridge.server.live import LiveSnapshot
    from nutbridge.server.pubsub import PubSubHub

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class DriverSide:
    """Driver mode (``[nut] mode = "driver"``, nutbridge-driver): NUT's view is the driver socket upsd connects to.

    ``settings`` stand for the port file's hand-written lines, which driver mode has no file for: the
    ``override.<name>`` keys of the UPS's ups.conf section (NUT's own way to set a variable by hand). What
    upsrw sets is kept in ``settings_file`` (nut/driver_commands.py), beneath them."""

    ups: str  # the ups.conf section
    socket: Path  # <statepath>/nutbridge-<UPS>, where upsd looks for a driver named nutbridge
    static: Mapping[str, str] = field(default_factory=dict)  # driver.name, driver.version, driver.parameter.* …
    settings: Mapping[str, str] = field(default_factory=dict)
    settings_file: Path | None = None  # None: upsrw's values last until the driver stops


@dataclass(frozen=True, slots=True, kw_only=True)
class Wiring:
    """What a builder may take besides the configuration: what the daemon made before any consumer."""

    config: Config
    portfile: PortFile | None  # None in driver mode
    dialect: Dialect | None  # the NUT that reads the port file; None in driver mode
    settings: frozenset[str]  # what the port file may set by hand (the source's NUT table names them)
    verbose: bool = False  # -v: a line per poll on stdout
    notifier: Notifier | None = None  # systemd's socket; None for -s, which never speaks to systemd
    driver: DriverSide | None = None  # driver mode: the socket in place of the port file
    load: LoadSwitch | None = None  # the source's load output, if it has one (the API's and upscmd's path to it)
    driver_settings: DriverSettings | None = None  # driver mode: what upsrw may set, and has set


@dataclass(frozen=True, slots=True)
class Consumer:
    """One entry of CONSUMERS: ``build`` makes the sink, or None when its section is off. ``one_shot``: it also
    takes ``-s``'s one poll (else it runs only in a daemon that keeps polling)."""

    build: Callable[[Wiring], Sink | None]
    one_shot: bool = False


def nut_view(w: Wiring) -> PortFileSink | DriverSocket:
    """NUT's view, always: the driver socket upsd connects to in driver mode (with upscmd's load.off/load.on when
    the source can switch its load, and upsrw's settings), else the port file dummy-ups reads (with the driver
    restart after a comms loss)."""
    if w.config.nut.mode == "driver":
        if w.driver is None:
            raise ConfigError(f'{w.config.origin}: nut.mode = "driver": NUT starts nutbridge-driver for this UPS')
        from nutbridge.nut.driver_commands import load_commands
        from nutbridge.nut.driver_socket import DriverSocket

        settable = w.driver_settings.setters(w.settings) if w.driver_settings else {}
        version = w.config.nut.version  # driver.state came with NUT 2.8.1; an older upsd is told nothing of it
        states = version is None or (version.major, version.minor, version.patch) >= (2, 8, 1)
        return DriverSocket(w.driver.socket, static=w.driver.static, commands=load_commands(w.load),
                            settable=settable, states=states)  # fmt: skip
    from nutbridge.nut import upsconf
    from nutbridge.nut.driver import PortFileSink

    assert w.config.nut.port_file is not None  # with_overrides refuses a daemon without one
    assert w.portfile is not None
    assert w.dialect is not None  # daemon.poll finds it whenever there is a port file
    restart = upsconf.restart_command(w.config.nut.port_file, w.config.nut.driver_restart_command)
    return PortFileSink(w.portfile, dialect=w.dialect, settings=w.settings, restart_command=restart)


def data_log(w: Wiring) -> DataLog | None:
    """The daily CSV files, when ``[datalog] folder`` is set; the sidecar also reads the rows it holds."""
    datalog = w.config.datalog
    if datalog.folder is None:
        return None
    from nutbridge.datalog.writer import DataLog

    return DataLog(datalog.folder, retention_days=datalog.retention_days, flush_interval=datalog.flush_interval)


def live_snapshot(w: Wiring) -> LiveSnapshot | None:
    """The newest snapshot, for the API to answer from, when ``[api] listen`` is set."""
    if w.config.api.listen is None:
        return None
    from nutbridge.server.live import LiveSnapshot

    return LiveSnapshot(w.config.monitor.poll_interval)


def pubsub(w: Wiring) -> PubSubHub | None:
    """The pub/sub hub on the API, when ``[pubsub]`` is enabled or has a key (with_overrides: only with an API)."""
    if w.config.api.listen is None or not (w.config.pubsub.enabled or w.config.pubsub.api_key is not None):
        return None
    from nutbridge.server.pubsub import PubSubHub  # imported when used, as every optional consumer

    return PubSubHub(w.config.pubsub)


def line_socket(w: Wiring) -> LineSocket | None:
    """The line protocol's listener, when ``[linesocket] listen`` is set."""
    if w.config.linesocket.listen is None:
        return None
    from nutbridge.feeds.linesocket import LineSocket

    return LineSocket(w.config.linesocket)


def mqtt(w: Wiring) -> MqttFeed | None:
    """The MQTT client, when ``[mqtt] url`` is set; its node is named after the UPS, as a rule."""
    if w.config.mqtt.url is None:
        return None
    from nutbridge.feeds.mqtt import MqttFeed

    port_file = w.config.nut.port_file
    name = w.driver.ups if w.driver else port_file.stem if port_file else "nutbridge"
    return MqttFeed(w.config.mqtt, name)


def systemd(w: Wiring) -> Systemd | None:
    """READY, STATUS and the watchdog, when the daemon has systemd's socket (never for -s)."""
    return Systemd(w.notifier) if w.notifier is not None else None


def printer(w: Wiring) -> PollPrinter | None:
    """-v: a line per poll on stdout."""
    if not w.verbose:
        return None
    from nutbridge.printer import PollPrinter

    return PollPrinter()


# The order they are built and entered in (and left in reverse); NUT's view of the poll first.
CONSUMERS: list[Consumer] = [
    Consumer(nut_view, one_shot=True),
    Consumer(data_log, one_shot=True),
    Consumer(live_snapshot),
    Consumer(pubsub),
    Consumer(line_socket),
    Consumer(mqtt),
    Consumer(systemd),
    Consumer(printer, one_shot=True),
]


@contextlib.asynccontextmanager
async def started(wiring: Wiring, *, one_shot: bool = False) -> AsyncIterator[list[Sink]]:
    """The sinks CONSUMERS builds (for ``one_shot``, -s, only the entries that take it), each async context
    manager among them entered until the block ends."""
    async with contextlib.AsyncExitStack() as stack:
        sinks: list[Sink] = []
        for consumer in CONSUMERS:
            if one_shot and not consumer.one_shot:
                continue
            sink = consumer.build(wiring)
            if sink is None:
                continue
            if isinstance(sink, contextlib.AbstractAsyncContextManager):
                await stack.enter_async_context(sink)
            sinks.append(sink)
        yield sinks


def find(sinks: Sequence[Sink], kind: type[T]) -> T | None:
    """The first of ``sinks`` that is a ``kind``, or None."""
    return next((sink for sink in sinks if isinstance(sink, kind)), None)
