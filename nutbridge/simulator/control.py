"""Text commands that steer a simulated Tracer, typed on stdin: ``night``, ``lowbatt``, ``fault``, ``restart``, ..."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import time

from nutbridge.simulator import holding as h
from nutbridge.simulator.physics import Mode, Plant

HELP = (
    "commands: day | sun | night | lowbatt | fault | silent | garbage | hang | "
    "soc PERCENT | volts RESTING-VOLTS | load WATTS | time HH:MM | freeze SECONDS | restart | settings | status | help"
)
MAX_LINE = 200
MAX_FREEZE = 600.0  # seconds


def freeze(seconds: float) -> None:
    """Block the whole event loop (a stuck process, for the systemd watchdog): nothing runs, nothing answers."""
    time.sleep(seconds)


def apply(plant: Plant, line: str) -> str:
    """Carry out one command line; return the answer to print."""
    words = line.split()
    if not words:
        return ""
    cmd, args = words[0].lower(), words[1:]
    try:
        if cmd in {m.value for m in Mode} and not args:
            plant.set_mode(Mode(cmd))
        elif cmd == "soc" and len(args) == 1:
            plant.set_charge(float(args[0]))
        elif cmd == "volts" and len(args) == 1:
            plant.set_resting_voltage(float(args[0]))
        elif cmd == "restart" and not args:
            plant.restart()
        elif cmd == "settings" and not args:
            return settings(plant)
        elif cmd == "load" and len(args) == 1:
            plant.load_w = max(0.0, float(args[0]))
        elif cmd == "time" and len(args) == 1:
            hours, minutes = args[0].split(":")
            plant.seconds = (plant.seconds // 86400) * 86400 + int(hours) * 3600 + int(minutes) * 60
        elif cmd == "freeze" and len(args) == 1:
            seconds = float(args[0])
            if not 0 < seconds <= MAX_FREEZE:
                raise ValueError(args[0])
            freeze(seconds)
        elif cmd == "help":
            return HELP
        elif cmd != "status":
            return f"unknown command {line.strip()!r}; {HELP}"
    except ValueError:
        return f"bad value in {line.strip()!r}; {HELP}"
    return status(plant)


def status(plant: Plant) -> str:
    """One line describing the plant."""
    hours, rest = divmod(int(plant.seconds % 86400), 3600)
    terminal = "on" if plant.output_on() else "off (low-voltage disconnect)" if plant.terminal.cut else "off"
    return (
        f"simulator: mode {plant.mode.value}, {hours:02d}:{rest // 60:02d}, battery {plant.soc:.1f} %, "
        f"{plant.battery_voltage():.2f} V, PV {plant.pv_power():.0f} W, load {plant.load_on_w():.0f} W, "
        f"load terminal {terminal}"
    )


def settings(plant: Plant) -> str:
    """One line with the controller's load-related settings and its non-volatile write count."""
    s = plant.settings
    return (
        f"simulator: battery type {s.words[h.BATTERY_TYPE]}, rated voltage code {s.words[h.RATED_VOLTAGE]}, "
        f"LVD {s.volts(h.LVD):.2f} V, LVR {s.volts(h.LVR):.2f} V, UVW {s.volts(h.UVW):.2f} V, "
        f"UVWR {s.volts(h.UVWR):.2f} V, load mode {s.load_mode}, manual default {int(s.manual_default_on)}, "
        f"coil 2 {int(plant.load_on)}, clock {s.rtc(plant.seconds):%Y-%m-%d %H:%M:%S}, "
        f"{s.nv_writes} non-volatile writes"
    )


def interactive_stdin() -> bool:
    """True when stdin is a terminal, pipe or socket; /dev/null (systemd) and files can't be awaited."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return sys.stdin.isatty() or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


async def read_commands(plant: Plant) -> None:
    """Apply commands from stdin until it closes; answers go to stderr, away from data on stdout."""
    if not interactive_stdin():
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE * 4)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        try:
            line = await reader.readline()
        except ValueError:  # an over-long line: drop it and carry on
            print(f"line too long (max {MAX_LINE} characters)", file=sys.stderr, flush=True)
            continue
        if not line:
            return
        answer = apply(plant, line.decode(errors="replace")[:MAX_LINE])
        if answer:
            print(answer, file=sys.stderr, flush=True)
