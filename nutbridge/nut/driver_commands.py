"""What NUT's ``upscmd`` and ``upsrw`` reach through the driver socket (driver_socket.py's ``commands`` and
``settable``): the instant commands the source can do, and the settings NUT may write, kept in a file.

Commands: ``load.off`` and ``load.on`` switch the load output through the daemon's LoadSwitch (the path the
sidecar's ``/control/load`` takes, under the same locks as the polls); a source without one lists none.

Settings: ``battery.charge.low`` (where LB starts; the monitor reads it at its next poll). A value upsrw sets is
kept in ``<folder>/nutbridge-<UPS>.settings`` (upsconf.nut_statepath(): $NUT_STATEPATH, else /var/lib/nut),
written atomically, so a restarted driver starts with it. That folder because it lasts (Debian's /run/nut is a tmpfs,
emptied at each boot), NUT's user, which the driver runs as, may write it, and ``nutbridge setup`` keeps the port
file and its seed there already; not beside the configuration, which is root's and which no daemon writes.

ups.conf's ``override.<name>`` wins, as it does for NUT's own drivers (drivers/main.c marks an override
immutable, without the RW flag): that variable is published as written and is not writable, so upsd answers
upsrw with READONLY; remove the override (and restart the driver) to set it from NUT.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from nutbridge.devices.load_switch import LoadSwitch
from nutbridge.files import describe, read_capped, replace_atomically
from nutbridge.nut.driver_socket import Command, Setter
from nutbridge.nut.driver_state import CmdStatus, SetStatus

log = logging.getLogger(__name__)

MAX_FILE = 4096  # bytes; the file holds a line per setting
FILE_MODE = 0o640
NUMBER = re.compile(r"\d{1,3}(\.\d{1,2})?")  # a plain decimal, as upsrw's users write percentages


def percent_below_100(value: str) -> bool:
    """A charge from 0 up to, not including, 100 % (at 100 the battery would be low at once)."""
    return NUMBER.fullmatch(value) is not None and float(value) < 100


# The settings NUT may write, each with the check a new value must pass.
SAFE: Mapping[str, Callable[[str], bool]] = {"battery.charge.low": percent_below_100}


def settings_file(folder: Path, ups: str) -> Path:
    """Where the UPS's settings set by upsrw are kept."""
    return folder / f"nutbridge-{ups}.settings"


def load_commands(switch: LoadSwitch | None) -> dict[str, Command]:
    """``load.off`` and ``load.on`` over ``switch``; none without one (the source has no load to switch)."""
    if switch is None:
        return {}

    def command(on: bool) -> Command:
        async def run(param: str | None) -> int:
            now = await switch.switch(on, by="upscmd (through upsd)")
            if now != on:  # the controller ignores the coil outside manual load mode; the read-back tells
                log.warning("load.%s: the load is still %s (is the controller in manual load mode?)",
                            "on" if on else "off", "on" if now else "off")  # fmt: skip
                return CmdStatus.FAILED
            return CmdStatus.HANDLED

        return run

    return {"load.off": command(False), "load.on": command(True)}


class DriverSettings:
    """The settings upsrw may write (SAFE), read from ``path`` at the start, beneath ups.conf's ``overrides``."""

    def __init__(self, path: Path | None, overrides: Mapping[str, str] = {}) -> None:
        self.path = path
        self.overrides = dict(overrides)
        self._stored = self._read()

    def get(self) -> dict[str, str]:
        """Every setting set by hand, the overrides over what upsrw set (the monitor's view reads it each poll)."""
        return {**self._stored, **self.overrides}

    def setters(self, names: frozenset[str]) -> dict[str, Setter]:
        """The SET handlers for those of ``names`` (the family's table's settings) NUT may write: SAFE, and not
        overridden in ups.conf."""
        return {name: self._setter(name) for name in sorted(names) if name in SAFE and name not in self.overrides}

    def _setter(self, name: str) -> Setter:
        async def run(value: str) -> int:
            return await self.set(name, value)

        return run

    async def set(self, name: str, value: str) -> int:
        """Check ``value``, keep it in the file, then use it; a SetStatus code."""
        check = SAFE.get(name)
        if check is None or name in self.overrides:
            return SetStatus.INVALID
        if not check(value):
            log.warning("upsrw %s=%r refused: not a value for it", name, value[:40])
            return SetStatus.INVALID
        stored = {**self._stored, name: value}
        if self.path is not None:
            text = "".join(f"{key}: {val}\n" for key, val in sorted(stored.items()))
            try:
                await asyncio.to_thread(replace_atomically, self.path, text.encode(), FILE_MODE)
            except OSError as exc:
                log.warning("upsrw %s=%s not kept: cannot write %s: %s", name, value, self.path, describe(exc))
                return SetStatus.FAILED
        self._stored = stored
        log.warning("upsrw: %s set to %s%s", name, value, f", kept in {self.path}" if self.path else "")
        return SetStatus.HANDLED

    def _read(self) -> dict[str, str]:
        """What the file keeps: ``name: value`` lines; a name or value that is not SAFE's is logged and left out."""
        if self.path is None:
            return {}
        try:
            data = read_capped(self.path, MAX_FILE)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("%s: cannot read: %s; the settings set by upsrw are not used", self.path, describe(exc))
            return {}
        if data is None:
            log.warning("%s: over %d bytes; the settings set by upsrw are not used", self.path, MAX_FILE)
            return {}
        found: dict[str, str] = {}
        for line in data.decode(errors="replace").splitlines():
            name, _, value = (part.strip() for part in line.partition(":"))
            check = SAFE.get(name)
            if check is not None and check(value):
                found[name] = value
            elif line.strip():
                log.warning("%s: %r is not a setting NUT may write; left out", self.path, line[:80])
        return found
