"""enphase-monitor's configuration file, read unchanged: ``nutbridge -c /etc/ups/enphase-UPS.conf``.

The file is a bash fragment of ``KEY=VALUE`` lines; it is split as the shell would (quotes, comments, values
over several lines) but never run. Each key becomes the nutbridge setting it meant, and the result is checked by
the same schema as a TOML file, so an error names the file and the key. As enphase-monitor: the file must not
be world-readable (it holds the Enlighten password), relative paths are taken under STATE_DIR (itself taken
from the file's folder when relative), the token file defaults to ``enphase-<UPS>.token`` there, and POLLFREQ,
POLLFREQALERT, LOGIN_TIMEOUT below 5 s and API_TIMEOUT below 2 s are raised to that minimum.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import stat
from pathlib import Path
from typing import Any

from nutbridge.config import MAX_CONFIG_SIZE, Config, from_mapping
from nutbridge.errors import ConfigError

log = logging.getLogger(__name__)

ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
SOURCE_KEYS = {"ENVOY_HOST": "host", "SERIAL": "serial", "USERNAME": "username", "PASSWORD": "password"}
SECONDS = {"LOGIN_TIMEOUT": ("source", "login_timeout"), "API_TIMEOUT": ("source", "api_timeout"),
           "POLLFREQ": ("monitor", "poll_interval"), "POLLFREQALERT": ("monitor", "poll_interval_on_battery"),
           "LOADKWH": ("source", "load_kwh")}  # fmt: skip
DEFAULTS = {"POLLFREQ": "60", "POLLFREQALERT": "20"}  # enphase-monitor's
# enphase-monitor raises a smaller value to these, silently; nutbridge's own checks would refuse some of them
MINIMA = {"POLLFREQ": 5.0, "POLLFREQALERT": 5.0, "LOGIN_TIMEOUT": 5.0, "API_TIMEOUT": 2.0}
FIXTURES = ("SESS", "TOKEN", "RELAY", "LIVE", "REPORTS", "SECCTRL", "INFO")
IGNORED = {"DEBUG", "UPS", "CONFIG_FILE"}
READ_FIRST = {"STATE_DIR"}  # read before the others: the paths are taken under it


def is_enphase_conf(path: Path) -> bool:
    """A file nutbridge reads as enphase-monitor's: any name that does not end in .toml."""
    return path.suffix != ".toml"


def parse(text: str, origin: str) -> dict[str, str]:
    """The assignments of a bash fragment, split as bash would; anything else is an error."""
    try:
        words = shlex.split(text, comments=True)
    except ValueError as exc:
        raise ConfigError(f"{origin}: cannot be read as enphase-monitor's KEY=VALUE lines: {exc}") from None
    values = {}
    for word in words:
        found = ASSIGNMENT.match(word)
        if found is None:
            raise ConfigError(f"{origin}: {word[:40]!r} is not a KEY=VALUE line (nutbridge reads, never runs, it)")
        values[found.group(1)] = found.group(2)
    return values


def required_number(values: dict[str, str], name: str, origin: str) -> float:
    """``values[name]`` as a float; ConfigError naming the file and the key when it is not one."""
    try:
        return float(values[name])
    except ValueError:
        raise ConfigError(f"{origin}: {name}={values[name]!r} is not a number") from None


def to_sections(values: dict[str, str], origin: str, ups: str | None) -> dict[str, dict[str, Any]]:
    """enphase-monitor's keys as nutbridge's sections."""
    source: dict[str, Any] = {"kind": "envoy"}
    sections: dict[str, dict[str, Any]] = {"source": source, "monitor": {}, "nut": {}, "test": {}}
    state_dir = values.get("STATE_DIR") or os.environ.get("NUT_STATEPATH") or "/var/lib/nut"
    source["state_dir"] = state_dir
    for name, value in values.items():
        if name in SOURCE_KEYS:
            source[SOURCE_KEYS[name]] = value
        elif name in SECONDS:
            section, key = SECONDS[name]
            seconds = required_number(values, name, origin)
            if seconds < MINIMA.get(name, seconds):
                log.info("%s: %s=%s is below enphase-monitor's minimum: %g", origin, name, value, MINIMA[name])
                seconds = MINIMA[name]
            sections[section][key] = seconds
        elif name == "PORT_FILE":
            sections["nut"]["port_file"] = str(Path(state_dir) / value)
        elif name == "TOKEN_FILE":
            source["token_file"] = str(Path(state_dir) / value)
        elif name == "DISABLE_METERS":
            source["meters"] = not value
        elif name == "TEST":
            sections["test"]["enabled"] = bool(value)
        elif name.startswith("TEST_") and name[5:] in FIXTURES:
            sections["test"][name[5:].lower()] = value
        elif name not in IGNORED and name not in READ_FIRST:
            log.warning("%s: %s is not an enphase-monitor setting nutbridge knows; ignored", origin, name)
    for name, default in DEFAULTS.items():
        if name not in values:
            section, key = SECONDS[name]
            sections[section][key] = float(default)
    if "token_file" not in source and ups:
        source["token_file"] = str(Path(state_dir) / f"enphase-{ups}.token")
    return sections


def load(path: Path) -> Config:
    """Read an enphase-monitor configuration file; ConfigError says what is wrong with it."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_CONFIG_SIZE:
            raise ConfigError(f"{path}: not an enphase-monitor configuration file")
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {getattr(exc, 'strerror', exc)}") from exc
    if st.st_mode & stat.S_IROTH:
        raise ConfigError(f"{path}: world read permissions exist on a file with a password; run 'chmod o-r {path}'")
    values = parse(text, str(path))
    ups = values.get("UPS") or (path.stem.removeprefix("enphase-") if path.stem.startswith("enphase-") else None)
    return from_mapping(to_sections(values, str(path), ups), str(path), base_dir=path.parent)
