"""``python -m nutbridge.simulator``: a simulated EPEver Tracer on TCP or a serial device."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import signal
import sys
import time

from nutbridge.simulator.control import HELP, apply, read_commands, status
from nutbridge.simulator.physics import Mode, Plant
from nutbridge.simulator.server import SimulatedTracer
from nutbridge.simulator.settings import Settings


def listen_address(text: str) -> tuple[str, int]:
    """HOST:PORT → (host, port); port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: use HOST:PORT, e.g. 127.0.0.1:5020")
    return host, int(port)


def parser() -> argparse.ArgumentParser:
    """The simulator's command line."""
    p = argparse.ArgumentParser(
        prog="python -m nutbridge.simulator",
        description="A simulated EPEver Tracer charge controller speaking Modbus. " + HELP + " (on stdin)",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", type=listen_address, metavar="HOST:PORT", help="serve Modbus TCP here")
    where.add_argument("--serial", metavar="DEVICE", help="serve Modbus RTU on this serial device (e.g. a pty)")
    p.add_argument("--rtu", action="store_true", help="with --listen: raw RTU frames, like a transparent gateway")
    p.add_argument("--mode", choices=[m.value for m in Mode], default="day", help="start in this mode")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (default 1)")
    p.add_argument("--time", default=None, metavar="HH:MM", help="simulated time of day to start at (default: now)")
    p.add_argument("--soc", type=float, default=70.0, help="battery charge to start at, percent")
    p.add_argument("--device-id", type=int, default=1, help="Modbus device id (default 1)")
    p.add_argument(
        "--lenient",
        action="store_true",
        help="answer reads across the gaps between register blocks (zeros there), as some units do; "
        "the default refuses them with exception 02, as EPEver documents",
    )
    return p


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT; stdin only steers the plant."""
    now = time.localtime()
    midnight = dt.datetime.combine(dt.date.today(), dt.time())  # the controller's clock: today, local time
    plant = Plant(seconds=now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec, soc=args.soc,
                  settings=Settings(rtc_base=midnight))  # fmt: skip
    if args.time and apply(plant, f"time {args.time}").startswith(("bad", "unknown")):
        raise SystemExit(f"--time {args.time!r}: use HH:MM")
    plant.set_mode(Mode(args.mode))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with SimulatedTracer(plant, speed=args.speed, device_id=args.device_id, lenient=args.lenient) as sim:
        if args.serial:
            await sim.start_serial(args.serial)
            print(f"serving Modbus RTU on {args.serial}", flush=True)
        else:
            host, port = args.listen
            port = await sim.start_tcp(host, port, rtu=args.rtu)
            print(f"listening on {host}:{port} ({'RTU' if args.rtu else 'Modbus TCP'} framing)", flush=True)
        print(status(plant), file=sys.stderr, flush=True)
        async with asyncio.TaskGroup() as tg:
            commands = tg.create_task(read_commands(plant), name="simulator.commands")
            await stop.wait()
            commands.cancel()


def main() -> None:
    """Entry point."""
    args = parser().parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # it logs frame dumps on every hiccup
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
