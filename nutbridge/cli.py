"""The command line: flags as NUT's enphase-monitor (-c -d -h -s -v -x), plus overrides for trying it out."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from nutbridge import __version__
from nutbridge.config import Config, config_path, load, with_overrides
from nutbridge.errors import ConfigError, NutbridgeError, PortFileError
from nutbridge.monitor import Monitor, Poll
from nutbridge.nut.driver import PortFileSink
from nutbridge.nut.portfile import PortFile
from nutbridge.sources.modbus_url import ModbusTarget
from nutbridge.sources.tracer import TracerSource

log = logging.getLogger("nutbridge")

EX_OK, EX_FAIL, EX_USAGE, EX_CONFIG = 0, 1, 2, 78
DEMO_SPEED = 600.0  # a simulated day in 2.4 minutes
DEMO_PORT_FILE = """\
# nutbridge demo port file. dummy-ups reads it; nutbridge updates its variables in place.
# Lines you add by hand, like the two below, are kept as they are.
battery.charge.low: 30
battery.runtime.low: 600
"""


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="nutbridge",
        description="Make a solar charge controller look like a UPS to NUT, through a dummy-ups port file.",
        epilog="Config: -c FILE, or UPS → $NUT_CONFPATH/nutbridge-UPS.toml (NUT_CONFPATH defaults to /etc/nut).",
    )
    p.add_argument("ups", nargs="?", metavar="UPS", help="the ups.conf section this instance feeds")
    p.add_argument("-c", dest="config", metavar="FILE", help="configuration file (TOML)")
    p.add_argument("-d", dest="debug", action="count", default=0, help="more debug output; -dd adds Modbus frames")
    p.add_argument("-v", dest="verbose", action="store_true", help="print every poll on stdout")
    once = p.add_mutually_exclusive_group()
    once.add_argument("-s", dest="single", action="store_true", help="poll once, write, exit 0 (or 1 on failure)")
    once.add_argument("-x", dest="nocomms", action="store_true", help="rename the port file to -nocomms and exit")
    once.add_argument("--demo", action="store_true", help="run on the simulator in a new folder, printing each poll")
    p.add_argument("--version", action="version", version=f"nutbridge {__version__}")
    p.add_argument(
        "--source", metavar="URL", help="rtu:///dev/ttyUSB0?baudrate=115200, tcp://HOST:502, rtu+tcp://HOST:PORT"
    )
    p.add_argument("--simulate", action="store_true", help="use the built-in simulated Tracer")
    p.add_argument("--port-file", metavar="PATH", help="the dummy-ups port file (it must exist)")
    p.add_argument("--poll-interval", type=float, metavar="SECONDS", help="seconds between polls (>= 0.2)")
    return p


def setup_logging(debug: int) -> None:
    """Log to stderr; under systemd the journal adds the time, elsewhere we do."""
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format=stamp + "%(levelname)s %(message)s")
    # pymodbus logs frame dumps at ERROR on every failure; we log one line per state change instead.
    logging.getLogger("pymodbus").setLevel(logging.DEBUG if debug >= 2 else logging.CRITICAL)
    logging.getLogger("asyncio").setLevel(logging.WARNING)


def make_demo_folder() -> Path:
    """A fresh folder with a seeded port file, for --demo."""
    folder = Path(tempfile.mkdtemp(prefix="nutbridge-demo-"))
    port_file = folder / "solar.dev"
    port_file.write_text(DEMO_PORT_FILE)
    from nutbridge.simulator.control import HELP

    print(f"demo folder: {folder}\n  port file: {port_file}\n  {HELP}, then Enter; Ctrl-C stops\n", flush=True)
    return port_file


def read_config(args: argparse.Namespace) -> Config:
    """The file (if any) plus command-line overrides."""
    if args.config:
        config = load(Path(args.config))
    elif args.ups:
        config = load(config_path(args.ups))
    else:
        config = Config()
    return with_overrides(
        config,
        source=args.source,
        simulate=args.simulate or args.demo,
        port_file=args.port_file,
        poll_interval=args.poll_interval,
    )


class PollPrinter:
    """-v: one line per poll on stdout, with what was written."""

    def __init__(self, sink: PortFileSink) -> None:
        self.sink = sink

    def __str__(self) -> str:
        return "poll printer"

    async def update(self, poll: Poll) -> None:
        """Print the poll."""
        stamp = time.strftime("%H:%M:%S")
        if poll.reading is None:
            state = "nocomms" if not poll.comms_ok else f"failed poll {poll.failures}"
            print(f"{stamp}  {state}: {poll.error}", flush=True)
            return
        r, v = poll.reading, self.sink.last_values
        print(
            f"{stamp}  {v.get('ups.status', ''):<14} battery {r.battery_charge or 0:3.0f} % "
            f"{r.battery_voltage or 0:5.2f} V {r.battery_current or 0:+6.2f} A   "
            f"PV {r.pv_voltage or 0:5.2f} V {r.pv_power or 0:6.1f} W   load {r.load_power or 0:5.1f} W   "
            f"runtime {v.get('battery.runtime') or '-'} s   "
            f"{self.sink.last_write.value if self.sink.last_write else ''}",
            flush=True,
        )


@contextlib.asynccontextmanager
async def open_source(config: Config, *, demo: bool) -> AsyncIterator[TracerSource]:
    """The configured Tracer, or a simulated one started here and reached over loopback Modbus TCP."""
    if config.source is not None:
        async with TracerSource(config.source, device_id=config.device_id, timeout=config.timeout) as source:
            yield source
        return
    # Imported here so a daemon on real hardware does not carry the pymodbus server in memory.
    from nutbridge.simulator.control import read_commands
    from nutbridge.simulator.physics import Plant
    from nutbridge.simulator.server import SimulatedTracer

    now = time.localtime()
    plant = Plant(seconds=7 * 3600 if demo else now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec)
    async with SimulatedTracer(plant, speed=DEMO_SPEED if demo else 1.0) as sim:
        port = await sim.start_tcp("127.0.0.1", 0)
        target = ModbusTarget(scheme="tcp", host="127.0.0.1", port=port)
        commands = asyncio.create_task(read_commands(plant), name="nutbridge.simulator-commands")
        try:
            async with TracerSource(target, timeout=config.timeout) as source:
                yield source
        finally:
            commands.cancel()


async def run(config: Config, portfile: PortFile, args: argparse.Namespace) -> int:
    """Wire source, monitor and sinks; poll once (-s) or until SIGTERM/SIGINT."""
    sink = PortFileSink(portfile, restart_command=config.driver_restart_command)
    sinks: list[PortFileSink | PollPrinter] = [sink]
    if args.verbose or args.demo:
        sinks.append(PollPrinter(sink))
    async with open_source(config, demo=args.demo) as source:
        monitor = Monitor(source, sinks, interval=config.poll_interval, nocomms_after=config.nocomms_after)
        if args.single:
            ok = await monitor.once()
            await sink.drain()
            return EX_OK if ok else EX_FAIL
        log.info(
            "nutbridge %s: %s → %s every %g s",
            __version__,
            source,
            portfile.path,
            config.poll_interval,
        )
        task = asyncio.create_task(monitor.run(), name="nutbridge.poll")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        log.info("stopped after %d polls", monitor.polls)
    return EX_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (78 for configuration errors, so systemd stops retrying)."""
    args = parser().parse_args(argv)
    setup_logging(args.debug)
    if args.demo:
        if args.port_file or args.source:
            print("nutbridge: --demo makes its own port file and simulator", file=sys.stderr)
            return EX_USAGE
        args.port_file = str(make_demo_folder())
        args.poll_interval = args.poll_interval or 1.0
    try:
        config = read_config(args)
        assert config.port_file is not None  # with_overrides refuses a config without one
        portfile = PortFile(config.port_file)
        portfile.locate()
    except (ConfigError, PortFileError) as exc:
        print(f"nutbridge: {exc}", file=sys.stderr)
        return EX_CONFIG
    if args.nocomms:
        try:
            hidden = portfile.hide()
        except PortFileError as exc:
            print(f"nutbridge: {exc}", file=sys.stderr)
            return EX_FAIL
        log.info("port file %s %s", portfile.hidden_path, "in place" if hidden else "was already in place")
        return EX_OK
    try:
        return asyncio.run(run(config, portfile, args))
    except NutbridgeError as exc:
        log.error("%s", exc)
        return EX_FAIL
    except KeyboardInterrupt:
        return EX_OK
