"""Configuration: a TOML file of sections plus command-line overrides → one frozen Config, validated once.

Each section is a frozen dataclass whose fields declare their own key, type, check and whether they hold a
secret (``Key`` metadata), and one field of Config: the loader reads the sections Config lists (SECTIONS is drawn
from it), so a new section is its dataclass and its field. ``[source]`` picks its dataclass by ``kind``. A key
belongs to one section only.
Every error names the file, the key and what is allowed; the CLI turns it into exit status 78.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nutbridge.config_keys import MIN_POLL_INTERVAL, Key, is_loopback, parse_listen
from nutbridge.config_sections import (
    ApiConfig,
    ControlConfig,
    DataLogConfig,
    LineSocketConfig,
    MonitorConfig,
    MqttConfig,
    NodeConfig,
    NutConfig,
    PeersConfig,
    PowerConfig,
    PubSubConfig,
    TestModeConfig,
)
from nutbridge.devices import registry
from nutbridge.devices.base import NO_SOURCE, SourceConfig
from nutbridge.devices.registry import DEFAULT_KIND, from_command_line
from nutbridge.errors import ConfigError
from nutbridge.redact import has_password, redact_url

MAX_CONFIG_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Everything the daemon needs, validated. Every field but ``source`` and ``origin`` is a section: its name
    is the TOML table's, its default an instance of the dataclass that reads it (SECTIONS is drawn from this)."""

    source: SourceConfig | None = None
    monitor: MonitorConfig = MonitorConfig()
    nut: NutConfig = NutConfig()
    power: PowerConfig = PowerConfig()
    datalog: DataLogConfig = DataLogConfig()
    api: ApiConfig = ApiConfig()
    peers: PeersConfig = PeersConfig()
    node: NodeConfig = NodeConfig()
    test: TestModeConfig = TestModeConfig()
    pubsub: PubSubConfig = PubSubConfig()
    linesocket: LineSocketConfig = LineSocketConfig()
    mqtt: MqttConfig = MqttConfig()
    control: ControlConfig = ControlConfig()
    origin: str = "command line"  # where the settings came from, for messages


NOT_SECTIONS = ("source", "origin")  # [source] picks its class by kind; origin is where the settings came from
SECTIONS: Mapping[str, type] = {
    f.name: type(f.default) for f in dataclasses.fields(Config) if f.name not in NOT_SECTIONS
}
RENAMED = {"monitor.nocomms_after": "monitor.nocomms_grace (seconds of silence, default 10)"}


def keys_of(cls: type) -> dict[str, Key]:
    """The TOML keys a section dataclass reads."""
    return {f.name: f.metadata["key"] for f in dataclasses.fields(cls) if "key" in f.metadata}


def section_class(section: str, table: Mapping[str, Any], origin: str) -> type:
    """The dataclass that reads ``[section]``; for ``[source]``, the one its ``kind`` names."""
    if section == "source":
        kind = table.get("kind", DEFAULT_KIND)
        if kind not in registry.kinds():
            raise ConfigError(f"{origin}: source.kind = {kind!r} is not allowed; use {', '.join(registry.kinds())}")
        return registry.family(kind).config
    if section not in SECTIONS:
        raise ConfigError(f"{origin}: unknown section [{section}]; allowed: source, {', '.join(SECTIONS)}")
    return SECTIONS[section]


def shown(spec: Key, value: Any) -> str:
    """A value as an error message may print it."""
    if spec.secret:
        return "<hidden>"
    return repr(redact_url(value)) if spec.url and isinstance(value, str) else repr(value)


def read_section(cls: type, section: str, table: Mapping[str, Any], origin: str, base_dir: Path) -> Any:
    """Validate one TOML table against ``cls``'s keys and build it."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{origin}: {section} must be a [{section}] table")
    keys = keys_of(cls)
    values: dict[str, Any] = {}
    for name, value in table.items():
        where = f"{origin}: {section}.{name}"
        if section == "source" and name == "kind":
            continue
        if f"{section}.{name}" in RENAMED:
            raise ConfigError(f"{where} was replaced by {RENAMED[f'{section}.{name}']}")
        if name not in keys:
            raise ConfigError(f"{origin}: unknown key {section}.{name}; allowed in [{section}]: {', '.join(keys)}")
        spec = keys[name]
        types = spec.types if isinstance(spec.types, tuple) else (spec.types,)
        stray_bool = isinstance(value, bool) and bool not in types  # TOML's true is no number
        if stray_bool or not isinstance(value, spec.types) or (spec.check and not spec.check(value)):
            raise ConfigError(f"{where} = {shown(spec, value)} is not allowed; use {spec.allowed}")
        values[name] = spec.convert(value, where, base_dir) if spec.convert else value
    return cls(**values)


def secrets_in(data: Mapping[str, Any], origin: str) -> list[str]:
    """Dotted names of the keys in ``data`` that hold secrets, as the schema declares them."""
    found = []
    for section, table in data.items():
        if not isinstance(table, Mapping):
            continue
        try:
            keys = keys_of(section_class(section, table, origin))
        except ConfigError:
            continue  # reported with its own message once the file is read
        for name, value in table.items():
            spec = keys.get(name)
            if spec and (spec.secret or (spec.url and isinstance(value, str) and has_password(value))):
                found.append(f"{section}.{name}")
    return found


def config_path(ups: str) -> Path:
    """Where ``nutbridge UPS`` looks: $NUT_CONFPATH/nutbridge-UPS.toml (NUT_CONFPATH defaults to /etc/nut)."""
    if not ups.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"UPS name {ups!r}: use letters, digits, '-' and '_' as in ups.conf")
    return Path(os.environ.get("NUT_CONFPATH") or "/etc/nut") / f"nutbridge-{ups}.toml"


def ups_config_file(ups: str) -> Path:
    """The file ``nutbridge UPS`` reads: nutbridge-UPS.toml, else enphase-monitor's enphase-UPS.conf beside it
    (read unchanged) when only that one exists."""
    path = config_path(ups)
    enphase = path.with_name(f"enphase-{ups}.conf")
    return enphase if not path.exists() and enphase.exists() else path


def load(path: Path) -> Config:
    """Read and validate a TOML file; one holding a secret must not be readable by group or others."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: not a regular file")
        if st.st_size > MAX_CONFIG_SIZE:
            raise ConfigError(f"{path}: over {MAX_CONFIG_SIZE // 1024} KiB; is it really the config file?")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    import tomllib  # here: nutbridge-driver without a config file (the usual ups.conf section) never parses TOML

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    secrets = secrets_in(data, str(path))
    if secrets and st.st_mode & 0o077:
        raise ConfigError(
            f"{path}: holds a secret ({', '.join(secrets)}) and is readable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); run 'chmod 600 {path}'"
        )
    return from_mapping(data, str(path), base_dir=path.parent)


def from_mapping(data: Mapping[str, Any], origin: str, base_dir: Path) -> Config:
    """Validate parsed TOML section by section; relative paths are taken from ``base_dir``."""
    parts: dict[str, Any] = {}
    for section, table in data.items():
        cls = section_class(section, table if isinstance(table, Mapping) else {}, origin)
        parts[section] = read_section(cls, section, table, origin, base_dir)
    return Config(origin=origin, **parts)


def datalog_overrides(datalog: DataLogConfig, data_dir: str | None, flush_interval: float | None) -> DataLogConfig:
    """``[datalog]`` with --data-dir and --flush-interval applied."""
    if data_dir is not None:
        datalog = replace(datalog, folder=Path(data_dir).expanduser().absolute())
    if flush_interval is not None:
        if not 0 <= flush_interval <= 3600:
            raise ConfigError(f"--flush-interval {flush_interval:g}: use seconds, 0-3600")
        datalog = replace(datalog, flush_interval=flush_interval)
    return datalog


def check_seed(config: Config) -> None:
    """The seed is a file of its own: the port file's persistent copy."""
    nut = config.nut
    if nut.seed_file is None or nut.port_file is None:
        return
    port = os.path.realpath(nut.port_file)
    if os.path.realpath(nut.seed_file) in (port, port + "-nocomms"):
        raise ConfigError(
            f"{config.origin}: nut.seed_file must be another file than the port file, on persistent storage "
            "(the port file may then live on tmpfs)"
        )


def check_tls_key(config: Config) -> None:
    """The API's TLS key must not be readable by others; its group may read it (Debian's ssl-cert group reads
    the keys in /etc/ssl/private). A key that cannot be read at all is reported when the API loads it."""
    key = config.api.tls_key
    if key is None:
        return
    try:
        mode = key.stat().st_mode
    except OSError:
        return
    if mode & stat.S_IROTH:
        raise ConfigError(
            f"{config.origin}: api.tls_key {key} is readable by others (mode {stat.S_IMODE(mode):04o}); "
            f"run 'chmod o-r {key}'"
        )


def with_overrides(
    config: Config,
    *,
    source: str | None = None,
    simulate: bool = False,
    port_file: str | None = None,
    poll_interval: float | None = None,
    nut_version: str | None = None,
    data_dir: str | None = None,
    flush_interval: float | None = None,
    api_listen: str | None = None,
    no_poll: bool = False,
) -> Config:
    """Apply command-line overrides (they win over the file), then check that a daemon can run.

    ``no_poll`` serves an existing data log without polling: then no source or port file is needed.
    """
    if source is not None and simulate:
        raise ConfigError("--source and --simulate exclude each other; pick one")
    config = replace(config, source=from_command_line(config.source, url=source, simulate=simulate))
    if port_file is not None:
        config = replace(config, nut=replace(config.nut, port_file=Path(port_file).expanduser().absolute()))
    if nut_version is not None:
        from nutbridge.nut.version import parse_version  # here: nutbridge-driver never parses one

        config = replace(config, nut=replace(config.nut, version=parse_version(nut_version, "--nut-version")))
    config = replace(config, datalog=datalog_overrides(config.datalog, data_dir, flush_interval))
    if poll_interval is not None:
        if not MIN_POLL_INTERVAL <= poll_interval <= 3600:
            raise ConfigError(f"--poll-interval {poll_interval:g}: use seconds, {MIN_POLL_INTERVAL:g}-3600")
        config = replace(config, monitor=replace(config.monitor, poll_interval=poll_interval))
    if api_listen is not None:
        config = replace(config, api=replace(config.api, listen=parse_listen(api_listen, "--api-listen")))
    if (config.api.tls_cert is None) != (config.api.tls_key is None):
        raise ConfigError(f"{config.origin}: HTTPS needs both api.tls_cert and api.tls_key")
    check_tls_key(config)
    if config.api.listen is not None and config.datalog.folder is None:
        raise ConfigError(f"{config.origin}: the API serves the data log; set datalog.folder or pass --data-dir")
    if config.power.sunrise_reserve is not None and config.datalog.folder is None:
        raise ConfigError(
            f"{config.origin}: power.sunrise_reserve learns the sunrise from the data log; set datalog.folder"
        )
    peers = config.peers
    for task, enabled in (("announce", peers.announce), ("election", peers.election)):
        if enabled and (peers.network_key is None or config.api.listen is None):
            raise ConfigError(f"{config.origin}: peers.{task} needs peers.network_key and api.listen (peers reach it)")
    pubsub_on = config.pubsub.enabled or config.pubsub.api_key is not None
    if (pubsub_on or config.control.secret) and config.api.listen is None:
        raise ConfigError(f"{config.origin}: pub/sub and load control are served on the API: set api.listen")
    if pubsub_on and config.pubsub.max_subscribers > config.api.max_connections:
        raise ConfigError(
            f"{config.origin}: pubsub.max_subscribers ({config.pubsub.max_subscribers}) is more than the API takes "
            f"at once (api.max_connections = {config.api.max_connections})"
        )
    if pubsub_on and config.pubsub.api_key is None and config.api.listen and not is_loopback(config.api.listen[0]):
        raise ConfigError(
            f"{config.origin}: pub/sub without pubsub.api_key would let anyone on the network subscribe and publish; "
            "set a key, or listen on loopback only (api.listen = 127.0.0.1:PORT)"
        )
    if peers.election and not peers.announce:
        raise ConfigError(f"{config.origin}: peers.election needs peers.announce: it elects among the nodes heard of")
    if no_poll:
        if config.api.listen is None:
            raise ConfigError("--no-poll only serves the data log: set api.listen or pass --api-listen ADDR")
        return config
    if config.nut.port_file is None and config.nut.mode != "driver":  # a driver speaks on NUT's socket instead
        raise ConfigError(f"{config.origin}: no port file; set nut.port_file or pass --port-file PATH")
    check_seed(config)
    if config.source is None:
        raise ConfigError(f"{config.origin}: {NO_SOURCE}")
    missing = registry.family(config.source.kind).missing(config.source, config.test.enabled)  # the family says what
    if missing is not None:
        raise ConfigError(f"{config.origin}: {missing}")
    return config
