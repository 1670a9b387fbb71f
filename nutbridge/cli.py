"""The command line: flags as NUT's enphase-monitor (-c -d -h -s -v -x), plus overrides for trying it out."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
from pathlib import Path

from nutbridge import __version__
from nutbridge.config import Config, ups_config_file, with_overrides
from nutbridge.config_keys import is_loopback
from nutbridge.errors import ConfigError, NutbridgeError, PortFileError
from nutbridge.nut.portfile import PortFile
from nutbridge.nut.seed import Seed
from nutbridge.system import load_any, setup_logging

log = logging.getLogger("nutbridge")

EX_OK, EX_FAIL, EX_USAGE, EX_CONFIG = 0, 1, 2, 78
DEMO_PORT = 8080  # the demo's dashboard, when the port is free
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
        epilog="Config: -c FILE, or UPS → $NUT_CONFPATH/nutbridge-UPS.toml (NUT_CONFPATH defaults to /etc/nut). "
        "SIGHUP reconnects to the device and reads its settings again. "
        "`nutbridge status [UPS] [--api URL] [--json]` shows a running daemon; "
        "`nutbridge setup UPS --source URL` makes a new install; `nutbridge doctor UPS [--json]` checks one; "
        "`nutbridge migrate UPS [--undo]` switches a Solar Protocol v1 node to nutbridge, and back; "
        "`nutbridge capture [UPS] [-o OUT]` saves the device's answers, redacted, for a bug report; "
        "`nutbridge killpower UPS [--restore] [--dry-run]` arms the power cycle ([power] cycle = true).",
    )
    p.add_argument("ups", nargs="?", metavar="UPS", help="the ups.conf section this instance feeds")
    p.add_argument("-c", dest="config", metavar="FILE", help="configuration file (TOML)")
    p.add_argument("-d", dest="debug", action="count", default=0, help="more debug output; -dd adds Modbus frames")
    p.add_argument("-v", dest="verbose", action="store_true", help="print every poll on stdout")
    once = p.add_mutually_exclusive_group()
    once.add_argument(
        "-s", dest="single", action="store_true", help="poll once, write, exit 0 only if the file holds that poll"
    )
    once.add_argument("-x", dest="nocomms", action="store_true", help="rename the port file to -nocomms and exit")
    once.add_argument("--demo", action="store_true", help="run on the simulator in a new folder, printing each poll")
    p.add_argument("--version", action="version", version=f"nutbridge {__version__}")
    p.add_argument(
        "--source", metavar="URL", help="rtu:///dev/ttyUSB0?baudrate=115200, tcp://HOST:502, rtu+tcp://HOST:PORT"
    )
    p.add_argument("--simulate", action="store_true", help="use the built-in simulated Tracer")
    p.add_argument("--port-file", metavar="PATH", help="the dummy-ups port file (it must exist)")
    p.add_argument("--poll-interval", type=float, metavar="SECONDS", help="seconds between polls (>= 0.2)")
    p.add_argument("--nut-version", metavar="X.Y.Z", help="the NUT that reads the port file (default: dummy-ups -V)")
    p.add_argument("--data-dir", metavar="PATH", help="keep the daily CSV data log in PATH (Solar Protocol v1 format)")
    p.add_argument(
        "--flush-interval", type=float, metavar="SECONDS", help="write the data log every SECONDS (0: each row)"
    )
    p.add_argument("--api-listen", metavar="ADDR", help="serve the API on ADDR, e.g. 127.0.0.1:8080")
    p.add_argument("--no-poll", action="store_true", help="only serve an existing data log (with --api-listen)")
    return p


def make_demo_folder(args: argparse.Namespace) -> None:
    """A fresh folder with a seeded port file and a week of simulated history, for --demo; the dashboard on
    127.0.0.1:8080 (or a free port) unless --api-listen says otherwise."""
    import tempfile

    from nutbridge.simulator.history import write_history

    folder = Path(tempfile.mkdtemp(prefix="nutbridge-demo-"))
    port_file = folder / "solar.dev"
    port_file.write_text(DEMO_PORT_FILE)
    args.port_file = str(port_file)
    if args.data_dir is None:
        args.data_dir = str(folder / "log")
    if args.flush_interval is None:
        args.flush_interval = 0.0  # the plots follow each poll; no SD card to spare
        write_history(folder / "log")  # so the plots have something to show
    if args.api_listen is None:
        args.api_listen = f"127.0.0.1:{free_port(DEMO_PORT)}"
    from nutbridge.simulator.control import HELP

    print(f"demo folder: {folder}\n  port file: {port_file}\n  dashboard: http://{args.api_listen}/\n"
          f"  {HELP}, then Enter; Ctrl-C stops\n", flush=True)  # fmt: skip


def free_port(wanted: int) -> int:
    """``wanted`` if a listener could bind it on 127.0.0.1 now, else a port the kernel has free."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", wanted))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def read_config(args: argparse.Namespace) -> Config:
    """The file (if any) plus command-line overrides."""
    if args.config:
        config = load_any(Path(args.config))
    elif args.ups:
        config = load_any(ups_config_file(args.ups))
    else:
        config = Config()
    return with_overrides(
        config,
        source=args.source,
        simulate=args.simulate or args.demo,
        port_file=args.port_file,
        poll_interval=args.poll_interval,
        nut_version=args.nut_version,
        data_dir=args.data_dir,
        flush_interval=args.flush_interval,
        api_listen=args.api_listen,
        no_poll=args.no_poll,
    )


def quiet_broken_stdout() -> None:
    """After ``| head -1`` closed stdout, let the interpreter exit without a BrokenPipeError message."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def subcommand(argv: list[str]) -> int | None:
    """Run the subcommand ``argv`` names (each its own module's main, imported only then); None for none. A UPS
    called "status" (say) is given with -c."""
    name, rest = (argv[0], argv[1:]) if argv else ("", [])
    if name == "status":
        from nutbridge.status_cmd import main as status_main

        return status_main(rest)
    if name == "setup":
        from nutbridge.setup_cmd import main as setup_main

        return setup_main(rest)
    if name == "migrate":
        from nutbridge.migrate import main as migrate_main

        return migrate_main(rest)
    if name == "doctor":
        from nutbridge.doctor import main as doctor_main

        return doctor_main(rest)
    if name == "capture":
        from nutbridge.capture import main as capture_main

        return capture_main(rest)
    if name == "killpower":
        from nutbridge.killpower_cmd import main as killpower_main

        return killpower_main(rest)
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (78 for configuration errors, so systemd stops retrying)."""
    argv = sys.argv[1:] if argv is None else argv
    if (status := subcommand(argv)) is not None:
        return status
    args = parser().parse_args(argv)
    setup_logging(args.debug)
    if args.demo:
        if args.port_file or args.source:
            print("nutbridge: --demo makes its own port file and simulator", file=sys.stderr)
            return EX_USAGE
        make_demo_folder(args)
        args.poll_interval = args.poll_interval or 1.0
    try:
        config = read_config(args)
        if args.demo and config.api.listen and is_loopback(config.api.listen[0]):  # live plots, from loopback only
            config = dataclasses.replace(config, pubsub=dataclasses.replace(config.pubsub, enabled=True))
        if args.no_poll:
            from nutbridge.daemon import serve_only

            served: int = asyncio.run(serve_only(config))
            return served
        if config.nut.mode == "driver":
            raise ConfigError(f'{config.origin}: nut.mode = "driver": NUT starts nutbridge-driver for this UPS')
        assert config.nut.port_file is not None  # with_overrides refuses a config without one
        portfile = PortFile(config.nut.port_file, seed=Seed(config.nut.seed_file) if config.nut.seed_file else None)
        portfile.locate()
    except (ConfigError, PortFileError) as exc:
        print(f"nutbridge: {exc}", file=sys.stderr)
        return EX_CONFIG
    except NutbridgeError as exc:
        print(f"nutbridge: {exc}", file=sys.stderr)
        return EX_FAIL
    if args.nocomms:
        try:
            hidden = portfile.hide()
        except PortFileError as exc:
            print(f"nutbridge: {exc}", file=sys.stderr)
            return EX_FAIL
        log.info("port file %s %s", portfile.hidden_path, "in place" if hidden else "was already in place")
        return EX_OK
    from nutbridge.daemon import run

    try:
        verbose = args.verbose or args.demo
        return asyncio.run(run(config, portfile, single=args.single, verbose=verbose, demo=args.demo, ups=args.ups))
    except NutbridgeError as exc:
        log.error("%s", exc)
        return EX_FAIL
    finally:
        quiet_broken_stdout()
