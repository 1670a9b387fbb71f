"""The UPS's ups.conf section as ``nutbridge-driver`` reads it: where NUT looks for the driver (its socket and PID
file), the section with ``-x`` applied, what the driver publishes about itself (``driver.*``) and the nutbridge
configuration it runs (``port`` the source, ``config`` the file, ``override.*`` the hand-set values). Imports stay
lazy: NUT starts drivers at boot."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nutbridge.config import Config
    from nutbridge.consumers import DriverSide

DRIVER = "nutbridge"  # the name ups.conf gives (driver = nutbridge); the socket and PID file carry it
DEFAULT_STATEPATH = "/run/nut"  # Debian's compiled STATEPATH and ALTPIDPATH (upsd looks there)
SIMULATOR_PORT = "simulate"  # port = simulate: the built-in simulated Tracer (tests, demos)
# ups.conf keys that are upsdrvctl's or ours, never driver.parameter.*
NOT_PARAMETERS = frozenset({"driver", "desc", "sdorder", "maxstartdelay"})


@dataclass(frozen=True, slots=True)
class Paths:
    """Where NUT's programs look for this driver: the socket in the state path, the PID file in the alternate
    PID path (both from NUT's environment, else Debian's compiled defaults)."""

    statepath: Path
    socket: Path
    pidfile: Path

    @classmethod
    def of(cls, ups: str, environ: dict[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        state = Path(env.get("NUT_STATEPATH") or DEFAULT_STATEPATH)
        pids = Path(env.get("NUT_ALTPIDPATH") or state)
        return cls(state, state / f"{DRIVER}-{ups}", pids / f"{DRIVER}-{ups}.pid")


@dataclass(frozen=True, slots=True, kw_only=True)
class Section:
    """The UPS's ups.conf section with -x applied, and the global settings before the sections."""

    ups: str
    entries: dict[str, str]
    globals: dict[str, str]


def read_section(ups: str, params: dict[str, str], confpath: Path | None = None) -> Section:
    """``[ups]`` from ``$NUT_CONFPATH/ups.conf``, -x's ``params`` over it; raises ConfigError."""
    from nutbridge.errors import ConfigError
    from nutbridge.nut import upsconf

    path = (confpath or upsconf.nut_confpath()) / "ups.conf"
    try:
        text = path.read_text(errors="replace")[: upsconf.MAX_UPS_CONF]
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    sections = upsconf.parse_sections(text)
    if ups not in sections:
        raise ConfigError(f"Section {ups} not found in {path}")
    entries = {**sections[ups], **params}
    driver = entries.get("driver")
    if driver not in (None, DRIVER):
        raise ConfigError(f"UPS [{ups}] is for driver {driver!r}, but I'm {DRIVER}")
    return Section(ups=ups, entries=entries, globals=upsconf.parse_globals(text))


def hand_set(entries: dict[str, str]) -> dict[str, str]:
    """The variables ups.conf sets by hand: ``override.<var> = value`` (NUT's drivers publish these as they are;
    nutbridge takes them where the port file's hand-written lines would be: battery.charge.low, …)."""
    return {name.removeprefix("override."): value for name, value in entries.items() if name.startswith("override.")}


def static_variables(section: Section) -> dict[str, str]:
    """What NUT's drivers publish about themselves: driver.name, driver.version(.internal), driver.parameter.*
    (every ups.conf key but upsdrvctl's) and driver.flag.* (a -x without a value)."""
    from nutbridge import __version__

    found = {"driver.name": DRIVER, "driver.version": __version__, "driver.version.internal": __version__}
    for name, value in section.entries.items():
        if name in NOT_PARAMETERS:
            continue
        if value == "enabled" and name not in ("port", "config"):
            found[f"driver.flag.{name}"] = value
        else:
            found[f"driver.parameter.{name}"] = value
    return found


def driver_config(section: Section, paths: Paths, interval: int | None = None) -> tuple[Config, DriverSide]:
    """The nutbridge configuration for the section (its ``config`` file, else the UPS's default one when it
    exists) in driver mode, with ``port`` as the source and ``pollinterval`` (or -i) as the poll interval;
    raises ConfigError."""
    import dataclasses

    from nutbridge.config import Config, ups_config_file, with_overrides
    from nutbridge.consumers import DriverSide
    from nutbridge.errors import ConfigError
    from nutbridge.nut import upsconf
    from nutbridge.nut.driver_commands import settings_file
    from nutbridge.system import load_any

    entries = section.entries
    named = entries.get("config")
    path = Path(named) if named else ups_config_file(section.ups)
    config = load_any(path) if named or path.exists() else Config(origin=f"ups.conf [{section.ups}]")
    config = dataclasses.replace(config, nut=dataclasses.replace(config.nut, mode="driver"))
    port = entries.get("port")
    poll = interval if interval is not None else entries.get("pollinterval")
    try:
        seconds = float(poll) if poll is not None else None
    except ValueError:
        raise ConfigError(f"UPS [{section.ups}]: pollinterval = {poll!r}: use seconds") from None
    config = with_overrides(
        config,
        source=port if port not in (None, SIMULATOR_PORT) else None,
        simulate=port == SIMULATOR_PORT,
        poll_interval=seconds,
    )
    kept = settings_file(upsconf.nut_statepath(), section.ups)  # upsrw's values: nut/driver_commands.py says why
    side = DriverSide(ups=section.ups, socket=paths.socket, static=static_variables(section),
                      settings=hand_set(entries), settings_file=kept)  # fmt: skip
    return config, side
