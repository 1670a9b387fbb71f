"""Wiring: source, monitor and sinks under one TaskGroup with named tasks; signals; the one-shot poll (-s).

SIGTERM and SIGINT stop the daemon at once: the stop event ends the poll loop even if a library swallows
the cancellation (Python 3.11's ``asyncio.wait_for``), and the poll task is cancelled again until it ends.
SIGHUP reconnects to the device before the next poll, so changed controller settings are read again.
Under systemd (``Type=notify``) the daemon is ready after its first poll, and pings the watchdog only while
its polls progress (sdnotify.py); ``-s`` never speaks to systemd.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nutbridge import __version__, consumers, early_stop
from nutbridge.config import Config
from nutbridge.consumers import DriverSide, Wiring, find
from nutbridge.devices import registry
from nutbridge.devices.base import Family, Opening, Source
from nutbridge.devices.load_switch import LoadSwitch
from nutbridge.limits import raise_open_files
from nutbridge.monitor import Monitor
from nutbridge.nut import variables
from nutbridge.nut.variables import first, hand_set_number, setting_names
from nutbridge.outlook import Forecaster, capacity_wh
from nutbridge.power import DEFAULT_CHARGE_LOW, LowVoltage
from nutbridge.sdnotify import Notifier, Systemd
from nutbridge.sinks import Sink, SinkRunner
from nutbridge.testmode import StateCycle

if TYPE_CHECKING:  # the port file's and the data log's modules are imported where used: not in driver mode
    from nutbridge.model import DeviceInfo
    from nutbridge.nut.driver import PortFileSink
    from nutbridge.nut.driver_commands import DriverSettings
    from nutbridge.nut.portfile import PortFile
    from nutbridge.nut.version import Dialect
    from nutbridge.server.control import LoadControl

log = logging.getLogger("nutbridge")

EX_OK, EX_FAIL = 0, 1
STOP_GRACE = 5.0  # seconds sinks get to finish what is queued when the daemon stops


def state_dir(config: Config) -> Path:
    """Where a device family keeps state its section does not place: beside the port file."""
    return config.nut.port_file.parent if config.nut.port_file else Path.cwd()


@contextlib.asynccontextmanager
async def open_source(
    config: Config,
    *,
    demo: bool,
    charge_low: Callable[[], float | None] = lambda: None,
    controller_record: Path | None = None,
) -> AsyncIterator[tuple[Source, list[Coroutine[Any, Any, None]], Family[Any]]]:
    """The configured source, the background work it brings (the simulator's stdin commands) and its family
    (registry.py), which opens it.

    In TEST mode the source goes through the state loop (``charge_low`` sets where lowbatt is).
    ``controller_record``: a power cycle's record, restored by the family's open if it exists.
    """
    family, section = registry.chosen(config.source, test=config.test.enabled)
    opening = Opening(
        state_dir=state_dir(config),
        test=config.test.enabled,
        fixtures=config.test.fixtures() if config.test.enabled else {},
        demo=demo,
        charge_low=charge_low,
        controller_record=controller_record,
    )
    async with family.open(section, opening) as (source, background):
        yield source, background, family


@contextlib.asynccontextmanager
async def sidecar(
    config: Config, sinks: Sequence[Sink] = (), control: LoadControl | None = None
) -> AsyncIterator[None]:
    """The API listener when ``[api] listen`` is set, with the peer tasks ``[peers]`` enables; else nothing.
    It serves the consumers among ``sinks`` that have routes (the live snapshot, pub/sub), and reads the day
    files and, after them, the rows the data log among ``sinks`` still holds."""
    if config.api.listen is None or config.datalog.folder is None:
        yield
        return
    from nutbridge.datalog.writer import DataLog
    from nutbridge.peers.devices import written_when_due
    from nutbridge.server.app import ApiLimits, Parts, Sidecar, tls_context
    from nutbridge.server.live import LiveSnapshot
    from nutbridge.server.pubsub import PubSubHub

    parts = Parts.from_config(config, held=find(sinks, DataLog))
    network = None
    if config.peers.announce:
        from nutbridge.peers.network import PeerNetwork

        assert parts.devices is not None  # with_overrides: announcing needs the network key
        network = PeerNetwork.from_config(config, cache=parts.cache, devices=parts.devices, node=parts.node)
    host, port = config.api.listen
    cert, key = config.api.tls_cert, config.api.tls_key
    tls = tls_context(cert, key) if cert and key else None
    election = network.election if network else None
    app = parts.app(config, find(sinks, LiveSnapshot), election, find(sinks, PubSubHub), control)
    sidecar = Sidecar(app, host, port, tls=tls, limits=ApiLimits.from_config(config))
    async with written_when_due(parts.devices), sidecar, network.running() if network else contextlib.nullcontext():
        yield


def load_switch(source: Source) -> LoadSwitch | None:
    """The load output of ``source`` (the device's, in TEST mode), the one path the API and upscmd take to it;
    None when the source has none."""
    return LoadSwitch.of(source.source if isinstance(source, StateCycle) else source)


def load_control(config: Config, switch: LoadSwitch | None) -> LoadControl | None:
    """The API's load control over ``switch`` when ``[control] secret`` is set."""
    if config.control.secret is None:
        return None
    from nutbridge.server.control import LoadControl

    return LoadControl(config.control.secret, switch)


async def serve_only(config: Config) -> int:
    """--no-poll: serve an existing data log until SIGTERM or SIGINT; no device is polled."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if early_stop.requested():  # a stop came while Python swallowed its EarlyStop (early_stop.py)
        stop.set()
    systemd = Systemd(Notifier.from_environment())  # no polls: the watchdog pings while the loop runs
    try:
        async with sidecar(config), asyncio.TaskGroup() as tg:
            watchdog = tg.create_task(systemd.watchdog(), name="nutbridge.watchdog")
            log.info("nutbridge %s: serving %s without polling", __version__, config.datalog.folder)
            systemd.serving(f"serving {config.datalog.folder} without polling")
            await stop.wait()
            systemd.stopping()
            watchdog.cancel()
    finally:
        systemd.notifier.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return EX_OK


def controller_record(ups: str | None) -> Path | None:
    """Where a power cycle keeps the controller's settings for ``ups`` (NUT's state folder), None without one."""
    if ups is None:
        return None
    from nutbridge.devices.tracer.cycle import record_file
    from nutbridge.nut.upsconf import nut_statepath

    return record_file(nut_statepath(), ups)


async def run(
    config: Config,
    portfile: PortFile | None,
    *,
    single: bool,
    verbose: bool,
    demo: bool,
    driver: DriverSide | None = None,
    notifier: Notifier | None = None,
    ups: str | None = None,
) -> int:
    """Poll once (-s) or until SIGTERM/SIGINT, with the consumers the config turns on. ``driver``: driver mode
    (no port file; nutbridge-driver); ``notifier``: where READY goes, if not systemd's socket (a driver's parent
    waiting for it to be ready); ``ups``: the UPS this instance feeds (driver mode: the driver's), whose power
    cycle record (devices/tracer/cycle.py) the source's open restores."""
    ups = driver.ups if driver is not None else ups
    record = controller_record(ups)
    if single:
        return await poll(config, portfile, single=True, verbose=verbose, demo=demo, record=record)
    if notifier is None:
        notifier = Notifier.from_environment()  # first, so no child inherits it; -s never reads it
    try:
        raise_open_files(
            (config.api.max_connections if config.api.listen else 0)
            + (config.linesocket.max_connections if config.linesocket.listen else 0)
        )
        return await poll(
            config, portfile, single=False, verbose=verbose, demo=demo, notifier=notifier, driver=driver, record=record
        )
    finally:
        notifier.close()


async def poll(
    config: Config,
    portfile: PortFile | None,
    *,
    single: bool,
    verbose: bool,
    demo: bool,
    notifier: Notifier | None = None,
    driver: DriverSide | None = None,
    record: Path | None = None,
) -> int:
    """The source, the monitor and the consumers: one poll (-s) or polling until stopped."""
    dialect = await port_file_dialect(config, portfile)
    stored = driver_settings(driver)
    by_hand = hand_settings(portfile, stored, {"battery.charge.low", "battery.capacity", "battery.voltage.nominal"})

    def charge_low() -> float:
        return first(hand_set_number(by_hand().get("battery.charge.low")), DEFAULT_CHARGE_LOW)

    def capacity(info: DeviceInfo) -> float | None:
        hand = by_hand()
        ah = first(hand_set_number(hand.get("battery.capacity")), info.battery_capacity)
        return capacity_wh(
            info, ah, first(hand_set_number(hand.get("battery.voltage.nominal")), info.battery_voltage_nominal)
        )

    async with open_source(config, demo=demo, charge_low=charge_low, controller_record=record) as (
        source,
        background,
        family,
    ):
        settings = setting_names(family.table)
        switch = load_switch(source)
        wiring = Wiring(config=config, portfile=portfile, dialect=dialect, settings=settings, verbose=verbose,
                        notifier=notifier, driver=driver, load=switch, driver_settings=stored)  # fmt: skip
        async with consumers.started(wiring, one_shot=single) as sinks:
            runners = [SinkRunner(sink) for sink in sinks]  # each queue as its sink wants
            forecaster = outlook(config, capacity, background) if not single else None
            monitor = Monitor(
                source,
                runners,
                interval=config.monitor.poll_interval,
                interval_on_battery=config.monitor.poll_interval_on_battery,
                # TEST mode shows each state, nocomms too, whatever the grace
                grace=0.0 if single or config.test.enabled else config.monitor.nocomms_grace,
                charge_low=charge_low,
                low_voltage=LowVoltage(
                    margin=config.power.disconnect_margin, shutdown_seconds=config.power.shutdown_seconds
                ),
                variables=variables.view(family.table, hand_settings(portfile, stored, settings)),
                power=family.power,
                outlook=forecaster,
                reserve=config.power.sunrise_reserve if forecaster is not None else None,
                before_poll=source.advance if isinstance(source, StateCycle) else None,
                retries=not config.test.enabled,
            )
            if single:
                from nutbridge.nut.driver import PortFileSink

                port = find(sinks, PortFileSink)
                assert port is not None  # the first consumer, always built (-s has a port file)
                for job in background:
                    job.close()
                return await poll_once(monitor, runners, port)
            every = monitor.interval
            if driver is not None:
                log.info(
                    "nutbridge %s: %s → NUT driver socket %s every %g s", __version__, source, driver.socket, every
                )
            else:
                assert portfile is not None
                log.info("nutbridge %s: %s → %s every %g s, for %s", __version__, source, portfile.path, every, dialect)
            async with sidecar(config, sinks, load_control(config, switch)):
                await serve(monitor, runners, background, find(sinks, Systemd))
            log.info("stopped after %d polls", monitor.polls)
    return EX_OK


def outlook(
    config: Config, capacity: Callable[[DeviceInfo], float | None], background: list[Coroutine[Any, Any, None]]
) -> Forecaster | None:
    """The expected charge at sunrise, learnt from the data log (``[datalog] folder``; else None), and the job that
    scans the log at start and when the day changes, added to ``background``."""
    if config.datalog.folder is None:
        return None
    from nutbridge.datalog.sunrise_scan import keep_fresh
    from nutbridge.sunrise import History

    history = History()
    background.append(keep_fresh(history, config.datalog.folder, config.power.sunrise_days))
    return Forecaster(history, capacity)


async def port_file_dialect(config: Config, portfile: PortFile | None) -> Dialect | None:
    """The NUT that reads the port file: ``[nut] version``, else what ``dummy-ups -V`` says. None without a port
    file: driver mode has no dialect, and a driver starting at boot runs no dummy-ups -V."""
    if portfile is None:
        return None
    from nutbridge.nut import version  # here: nutbridge-driver never loads it

    detected = await asyncio.to_thread(version.detect) if not config.nut.version else None
    return version.Dialect(config.nut.version or detected)


def driver_settings(driver: DriverSide | None) -> DriverSettings | None:
    """Driver mode's settings: ups.conf's ``override.*`` keys over what upsrw set (kept in its file)."""
    if driver is None:
        return None
    from nutbridge.nut.driver_commands import DriverSettings

    return DriverSettings(driver.settings_file, driver.settings)


def hand_settings(
    portfile: PortFile | None, stored: DriverSettings | None, names: frozenset[str] | set[str]
) -> Callable[[], Mapping[str, str]]:
    """The settings ``names`` as set by hand: the port file's lines (read again when it changes), or in driver
    mode ups.conf's ``override.*`` keys over what upsrw set, read at each call (upsrw changes them)."""
    if portfile is not None:
        from nutbridge.nut.portfile import HandSettings

        return HandSettings(portfile, names).get
    if stored is None:
        return dict
    return lambda: {name: value for name, value in stored.get().items() if name in names}


async def poll_once(monitor: Monitor, runners: list[SinkRunner], sink: PortFileSink) -> int:
    """-s: one poll; exit 0 only when the device answered and the port file (``sink``) holds this poll."""
    port = next(runner for runner in runners if runner.sink is sink)
    async with asyncio.TaskGroup() as tg:
        for runner in runners:
            tg.create_task(runner.run(), name=f"nutbridge.sink.{runner}")
        snapshot = await monitor.poll()
        monitor.publish(snapshot)
        written = await port.handled(snapshot.seq)
        for runner in runners:
            runner.close()
    await sink.drain()
    return EX_OK if snapshot.ok and written else EX_FAIL


async def serve(
    monitor: Monitor,
    runners: list[SinkRunner],
    background: list[Coroutine[Any, Any, None]],
    systemd: Systemd | None = None,
) -> None:
    """Run every long-lived part under one TaskGroup until SIGTERM or SIGINT; ``systemd`` pings its watchdog."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        sink_tasks = [tg.create_task(r.run(), name=f"nutbridge.sink.{r}") for r in runners]
        extra = [tg.create_task(job, name=f"nutbridge.background.{i}") for i, job in enumerate(background)]
        if systemd is not None:
            extra.append(tg.create_task(systemd.watchdog(monitor), name="nutbridge.watchdog"))
        poll = tg.create_task(monitor.run(stop), name="nutbridge.poll")

        def on_stop(signum: int) -> None:
            log.info("%s: stopping", signal.Signals(signum).name)
            if systemd is not None:
                systemd.stopping()
            stop.set()
            poll.cancel()

        def on_hangup() -> None:
            log.info("SIGHUP: reconnecting to the device before the next poll to read its settings again")
            monitor.request_reset()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
        if early_stop.requested():  # a stop came while Python swallowed its EarlyStop (early_stop.py)
            on_stop(signal.SIGTERM)
        try:
            await asyncio.wait({poll})  # a swallowed cancel still ends it: the loop checks ``stop``
        finally:
            for task in extra:
                task.cancel()
            for runner in runners:
                runner.close()
            _, late = await asyncio.wait(sink_tasks, timeout=STOP_GRACE)
            for task in late:
                log.warning("%s did not finish within %g s of the stop", task.get_name(), STOP_GRACE)
                task.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
