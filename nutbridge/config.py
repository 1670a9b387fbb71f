"""Configuration: a TOML file plus command-line overrides → one frozen Config, validated once.

Every error names the file, the key and what is allowed; the CLI turns it into exit status 78.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nutbridge.errors import ConfigError
from nutbridge.sources.modbus_url import ModbusTarget, parse_modbus_url

MIN_POLL_INTERVAL = 0.2
MAX_CONFIG_SIZE = 64 * 1024
SECRET_KEYS = frozenset({"password", "token", "secret", "api_key"})

# section → key → (type, check, what is allowed)
SCHEMA: Mapping[str, Mapping[str, tuple[type | tuple[type, ...], Any, str]]] = {
    "source": {
        "url": (str, None, "rtu:///dev/ttyUSB0?baudrate=115200, tcp://HOST:502 or rtu+tcp://HOST:PORT"),
        "device_id": (int, lambda v: 1 <= v <= 247, "an integer 1-247"),
        "timeout": ((int, float), lambda v: 0.05 <= v <= 30, "seconds, 0.05-30"),
    },
    "monitor": {
        "poll_interval": ((int, float), lambda v: MIN_POLL_INTERVAL <= v <= 3600, "seconds, 0.2-3600"),
        "nocomms_after": (int, lambda v: 1 <= v <= 1000, "an integer 1-1000 (failed polls)"),
    },
    "nut": {
        "port_file": (str, bool, "a path to the dummy-ups port file"),
        "driver_restart_command": (str, None, "a command line, e.g. 'upsdrvctl start solar'"),
    },
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Everything the daemon needs, validated. ``source`` is None for the built-in simulator."""

    source: ModbusTarget | None = None
    device_id: int = 1
    timeout: float = 1.0
    poll_interval: float = 10.0
    nocomms_after: int = 1
    port_file: Path | None = None
    driver_restart_command: str | None = None
    origin: str = "command line"  # where the settings came from, for messages

    @property
    def simulate(self) -> bool:
        """True when the built-in simulator is the source."""
        return self.source is None


def config_path(ups: str) -> Path:
    """Where ``nutbridge UPS`` looks: $NUT_CONFPATH/nutbridge-UPS.toml (NUT_CONFPATH defaults to /etc/nut)."""
    if not ups.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"UPS name {ups!r}: use letters, digits, '-' and '_' as in ups.conf")
    return Path(os.environ.get("NUT_CONFPATH") or "/etc/nut") / f"nutbridge-{ups}.toml"


def secret_keys(table: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of keys that hold secrets, anywhere in the file."""
    found = []
    for key, value in table.items():
        if isinstance(value, Mapping):
            found += secret_keys(value, f"{prefix}{key}.")
        elif key.lower() in SECRET_KEYS:
            found.append(prefix + key)
    return found


def load(path: Path) -> Config:
    """Read and validate a TOML file."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: not a regular file")
        if st.st_size > MAX_CONFIG_SIZE:
            raise ConfigError(f"{path}: over {MAX_CONFIG_SIZE // 1024} KiB; is it really the config file?")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    secrets = secret_keys(data)
    if secrets and st.st_mode & 0o077:
        raise ConfigError(
            f"{path}: holds a secret ({', '.join(secrets)}) and is readable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); run 'chmod 600 {path}'"
        )
    return from_mapping(data, str(path), base_dir=path.parent)


def from_mapping(data: Mapping[str, Any], origin: str, base_dir: Path) -> Config:
    """Validate parsed TOML against SCHEMA and build a Config; relative paths are taken from ``base_dir``."""
    settings: dict[str, Any] = {}
    for section, table in data.items():
        if section not in SCHEMA:
            raise ConfigError(f"{origin}: unknown section [{section}]; allowed: {', '.join(SCHEMA)}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{origin}: {section} must be a [{section}] table")
        for key, value in table.items():
            if key not in SCHEMA[section]:
                allowed = ", ".join(SCHEMA[section])
                raise ConfigError(f"{origin}: unknown key {section}.{key}; allowed in [{section}]: {allowed}")
            kind, check, allowed = SCHEMA[section][key]
            if isinstance(value, bool) or not isinstance(value, kind) or (check and not check(value)):
                raise ConfigError(f"{origin}: {section}.{key} = {value!r} is not allowed; use {allowed}")
            settings[key] = value
    config = Config(origin=origin)
    if "url" in settings:
        config = replace(config, source=parse_modbus_url(settings.pop("url"), f"{origin}: source.url"))
    if "port_file" in settings:
        settings["port_file"] = base_dir / Path(settings["port_file"]).expanduser()
    return replace(config, **settings)


def with_overrides(
    config: Config,
    *,
    source: str | None = None,
    simulate: bool = False,
    port_file: str | None = None,
    poll_interval: float | None = None,
) -> Config:
    """Apply command-line overrides; they win over the file."""
    if source is not None and simulate:
        raise ConfigError("--source and --simulate exclude each other; pick one")
    if source is not None:
        config = replace(config, source=parse_modbus_url(source, "--source"))
    if port_file is not None:
        config = replace(config, port_file=Path(port_file).expanduser().absolute())
    if poll_interval is not None:
        if not MIN_POLL_INTERVAL <= poll_interval <= 3600:
            raise ConfigError(f"--poll-interval {poll_interval:g}: use seconds, 0.2-3600")
        config = replace(config, poll_interval=poll_interval)
    if config.port_file is None:
        raise ConfigError(f"{config.origin}: no port file; set nut.port_file or pass --port-file PATH")
    if config.source is None and not simulate:
        raise ConfigError(f"{config.origin}: no source; set source.url, or pass --source URL or --simulate")
    return replace(config, source=None) if simulate else config
