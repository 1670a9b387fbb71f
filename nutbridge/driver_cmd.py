"""``nutbridge-driver``: nutbridge as one of NUT's own drivers, started by ``upsdrvctl`` and ``nut-driver@UPS``.

ups.conf names it (``driver = nutbridge``, a link to this script in NUT's driverpath); it takes NUT's driver flags
as drivers/main.c parses them, reads its ups.conf section (``port`` is the source, ``config`` the nutbridge
config file, ``override.<var>`` a variable set by hand, everything else ``driver.parameter.*``) and runs the
whole daemon with NUT's view on the driver socket ``<statepath>/nutbridge-<UPS>`` instead of the port file.

Background by default, as NUT's drivers: the process forks before anything is opened, and the parent exits 0
only when the child says it is ready (its socket listens and the first poll is done), so upsdrvctl and
systemd's Type=forking see it up; a child that fails first passes its status on. Only the flags are parsed at
import: NUT starts drivers at boot, on machines as slow as a Pi Zero.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nutbridge.driver_section import DRIVER, Paths, driver_config, read_section  # no imports of its own
from nutbridge.errors import NutbridgeError  # a small module, no imports of its own

if TYPE_CHECKING:
    from nutbridge.config import Config
    from nutbridge.consumers import DriverSide
    from nutbridge.sdnotify import Notifier

EXIT_SUCCESS, EXIT_FAILURE = 0, 1  # NUT's drivers exit with these only
DEFAULT_USER = "nut"  # Debian's RUN_AS_USER: what a driver started as root becomes without -u or user =
STOP_WAIT = 10.0  # seconds an older instance gets to go after SIGTERM, before SIGKILL (NUT's drivers do the same)
USAGE = f"""\
usage: nutbridge-driver -a <id> [OPTIONS]

  -a <id>        the UPS's section in ups.conf (required)
  -D             raise the debug level (repeat for more)
  -q             log less (accepted; nutbridge logs state changes only)
  -F             stay in the foreground; -FF: also write the PID file
  -B             go to the background (the default)
  -u <user>      run as <user> (default: ups.conf's user, else {DEFAULT_USER} when started as root)
  -x <var>=<val> a driver parameter, as in ups.conf (wins over it)
  -i <seconds>   poll interval (ups.conf's pollinterval)
  -c <command>   tell the running driver: exit (SIGTERM) or reload (SIGHUP: read the device's settings again)
  -k             switch the UPS off (not yet: issue 21)
  -V             print the version and exit
  -h             this help
"""


class UsageError(NutbridgeError):
    """A flag NUT's drivers would refuse (status 1, as theirs)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Flags:
    """The command line, as drivers/main.c reads it."""

    ups: str | None = None
    debug: int = 0
    foreground: int = 0  # -F: 1; -FF: 2 (with the PID file)
    user: str | None = None
    params: dict[str, str] = field(default_factory=dict)  # -x name=value (a bare name is a flag: "enabled")
    interval: int | None = None
    command: str | None = None  # -c: "exit" or "reload"
    kill: bool = False
    version: bool = False
    help: bool = False


VALUE_FLAGS = frozenset("auxicrP")
COMMANDS = {"exit": signal.SIGTERM, "reload": signal.SIGHUP}


def parse_flags(argv: list[str]) -> Flags:
    """NUT's driver flags, getopt style: ``-DDD``, ``-FF``, ``-a UPS`` or ``-aUPS``; raises UsageError."""
    values: dict[str, object] = {"debug": 0, "foreground": 0, "params": {}}
    params: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            raise UsageError(f"unexpected argument {arg!r}; try -h")
        letters = arg[1:]
        while letters:
            letter, letters = letters[0], letters[1:]
            if letter in VALUE_FLAGS:
                if not letters:
                    if i >= len(argv):
                        raise UsageError(f"option -{letter} needs a value; try -h")
                    letters, i = argv[i], i + 1
                take(letter, letters, values, params)
                letters = ""
            elif letter == "D":
                values["debug"] = int(str(values["debug"])) + 1
            elif letter == "F":
                values["foreground"] = int(str(values["foreground"])) + 1
            elif letter == "B":
                values["foreground"] = 0
            elif letter == "q":
                pass
            elif letter in "kVh":
                values[{"k": "kill", "V": "version", "h": "help"}[letter]] = True
            else:
                raise UsageError(f"unknown option -{letter}; try -h")
    values["params"] = params
    return Flags(**values)  # type: ignore[arg-type]  # each key is set by its own letter above


def take(letter: str, value: str, values: dict[str, object], params: dict[str, str]) -> None:
    """One option with a value into ``values`` (or ``params`` for -x)."""
    if letter == "a":
        values["ups"] = value
    elif letter == "u":
        values["user"] = value
    elif letter == "x":
        name, sep, setting = value.partition("=")
        if not name:
            raise UsageError(f"-x {value!r}: use -x name=value")
        params[name] = setting if sep else "enabled"
    elif letter == "i":
        if not value.isdigit() or int(value) < 1:
            raise UsageError(f"-i {value!r}: use whole seconds, 1 or more")
        values["interval"] = int(value)
    elif letter == "c":
        # as main.c: any leading part of the word names it ("e" is exit)
        found = [name for name in COMMANDS if name.startswith(value)] if value else []
        if len(found) != 1:
            raise UsageError(f"-c {value!r}: use exit or reload")
        values["command"] = found[0]
    elif letter == "r":
        raise UsageError("-r (chroot) is not supported by nutbridge-driver")
    elif letter == "P":
        raise UsageError("-P (signal a PID) is not supported; -c finds the driver by its PID file")


def signal_running(pidfile: Path, sig: signal.Signals) -> int:
    """-c: ``sig`` to the instance the PID file names; NUT's status (0 sent, 1 not)."""
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, sig)
    except (OSError, ValueError) as exc:
        print(f"Error: no running driver to signal through {pidfile}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_SUCCESS


def stop_older(pidfile: Path) -> None:
    """An instance already running for this UPS is stopped first, as NUT's drivers do (SIGTERM, then SIGKILL)."""
    import time

    try:
        pid = int(pidfile.read_text().strip())
        if pid == os.getpid():
            return
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return  # none, or gone already
    print(f"Duplicate driver instance detected ({pidfile} exists)! Terminating other driver!", file=sys.stderr)
    deadline = time.monotonic() + STOP_WAIT
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.1)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def become_user(name: str | None) -> None:
    """Drop root for ``name`` (its groups too); as root without a name, NUT's own user. Nothing as another user."""
    import pwd

    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(name or DEFAULT_USER)  # KeyError: no such user
    if entry.pw_uid == 0:
        return
    os.initgroups(entry.pw_name, entry.pw_gid)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


def main(argv: list[str] | None = None) -> int:
    """Entry point: NUT's driver flags, then the daemon (in the background unless -F); NUT's exit status."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        flags = parse_flags(argv)
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if flags.help:
        print(USAGE, end="")
        return EXIT_SUCCESS
    from nutbridge import __version__

    banner = f"Network UPS Tools - nutbridge driver {__version__}"
    if flags.version:
        print(banner)
        return EXIT_SUCCESS
    if flags.ups is None:
        print("Error: specifying -a <id> is now mandatory; try -h", file=sys.stderr)
        return EXIT_FAILURE
    paths = Paths.of(flags.ups)
    if flags.command is not None:
        return signal_running(paths.pidfile, COMMANDS[flags.command])
    if flags.kill:
        print("Error: -k (switch the UPS off) is not supported by nutbridge-driver yet (issue 21)", file=sys.stderr)
        return EXIT_FAILURE
    print(banner, file=sys.stderr)
    try:
        section = read_section(flags.ups, flags.params)
        config, side = driver_config(section, paths, flags.interval)
    except NutbridgeError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    stop_older(paths.pidfile)
    try:
        become_user(flags.user or section.globals.get("user") or section.entries.get("user"))
        os.chdir(paths.statepath)
    except (KeyError, OSError) as exc:
        print(f"Error: cannot become the driver's user or enter {paths.statepath}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if flags.foreground:
        return run(config, side, flags.debug, pidfile=paths.pidfile if flags.foreground > 1 else None)
    return background(config, side, flags.debug, paths.pidfile)


def background(config: Config, side: DriverSide, debug: int, pidfile: Path) -> int:
    """Fork (before any thread or event loop exists); the parent returns 0 once the child is ready, or the
    child's status if it ends first."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.setsid()  # out of upsdrvctl's session: its end is not ours
        return run(config, side, debug, pidfile=pidfile, handover=ready_w)
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as pipe:
        said = pipe.read()
    if said.startswith(b"READY"):
        return EXIT_SUCCESS
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) or EXIT_FAILURE


def run(config: Config, side: DriverSide, debug: int, *, pidfile: Path | None, handover: int | None = None) -> int:
    """The daemon in driver mode until SIGTERM; the PID file (if any) names this process meanwhile."""
    import asyncio
    import logging

    from nutbridge.daemon import run as daemon_run
    from nutbridge.system import setup_logging

    setup_logging(debug)
    if pidfile is not None:
        pidfile.write_text(f"{os.getpid()}\n")
    notifier = handover_notifier(handover, side) if handover is not None else None
    try:
        return asyncio.run(
            daemon_run(config, None, single=False, verbose=False, demo=False, driver=side, notifier=notifier)
        )
    except NutbridgeError as exc:
        logging.getLogger("nutbridge").error("%s", exc)
        return EXIT_FAILURE
    finally:
        if pidfile is not None:
            pidfile.unlink(missing_ok=True)


def handover_notifier(fd: int, side: DriverSide) -> Notifier:
    """A systemd notifier whose READY=1 (sent after the first poll, the socket listening) tells the waiting
    parent instead, then detaches the process from the terminal: stdio to /dev/null, logs to syslog."""
    from nutbridge.sdnotify import Notifier

    class Handover(Notifier):
        def send(self, **fields: str) -> bool:
            nonlocal fd
            if "READY" in fields and fd >= 0:
                os.write(fd, b"READY=1\n")
                os.close(fd)
                fd = -1
                detach(side.ups)
            return True  # nothing else is told: no systemd watches a backgrounded driver through us

    return Handover(None)


def detach(ups: str) -> None:
    """Stdin, stdout and stderr to /dev/null (a caller's pipe must see its end), the log to syslog."""
    import logging
    import logging.handlers

    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if Path("/dev/log").exists():
        syslog = logging.handlers.SysLogHandler(address="/dev/log")
        syslog.setFormatter(logging.Formatter(f"{DRIVER}-{ups}[{os.getpid()}]: %(levelname)s %(message)s"))
        root.addHandler(syslog)
    else:
        root.addHandler(logging.NullHandler())


def entry() -> int:
    """The ``nutbridge-driver`` console script: a stop before the event loop takes the signals is a quiet exit."""
    from nutbridge import early_stop
    from nutbridge.early_stop import EarlyStop

    try:
        early_stop.install()
        return main()
    except (EarlyStop, KeyboardInterrupt):
        return EXIT_SUCCESS
