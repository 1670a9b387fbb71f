"""Configuration: a TOML file of sections plus command-line overrides → one frozen Config, validated once.

Each section is a frozen dataclass whose fields declare their own key, type, check and whether they hold a
secret (``Key`` metadata); ``[source]`` picks its dataclass by ``kind``. A key belongs to one section only.
Every error names the file, the key and what is allowed; the CLI turns it into exit status 78.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from nutbridge.errors import ConfigError
from nutbridge.node import MAC
from nutbridge.nut.version import NutVersion, parse_version
from nutbridge.redact import has_password, redact_url
from nutbridge.sources.modbus_url import ModbusTarget, parse_modbus_url

MIN_POLL_INTERVAL = 0.2
HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[0-9A-Za-z.-]{1,253})(:\d{1,5})?$")
ENLIGHTEN_LOGIN = "https://enlighten.enphaseenergy.com/login/login.json?"  # the "?" is part of it, as enphase-monitor's
ENTREZ_TOKENS = "https://entrez.enphaseenergy.com/tokens"
TOPIC = re.compile(r"^[^+#\s\x00]{1,200}$")
ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[0-9A-Za-z.:-]{1,253})(:\d{1,5})?$")
MAX_CONFIG_SIZE = 64 * 1024
DEFAULT_FLUSH_INTERVAL = 300.0  # bench/flash_writes.py: what keeps a default install under 20 MB a day
DEFAULT_DEVICE_LIST_FLUSH_INTERVAL = 3600.0  # the same bench: a node with peers stays under it too


@dataclass(frozen=True, slots=True, kw_only=True)
class Key:
    """How one TOML key is read: its types, a check, the words for what is allowed, and a conversion.

    ``secret`` marks a value that must never be printed and makes a group- or world-readable file refused;
    ``url`` marks a URL, which counts as a secret when it carries a password.
    """

    types: type | tuple[type, ...]
    allowed: str
    check: Callable[[Any], bool] | None = None
    convert: Callable[[Any, str, Path], Any] | None = None  # (value, where, base_dir) → field value
    secret: bool = False
    url: bool = False


def key(default: Any = None, **spec: Any) -> Any:
    """A dataclass field read from TOML as ``Key(**spec)`` describes."""
    return field(default=default, metadata={"key": Key(**spec)})


def seconds(low: float, high: float) -> dict[str, Any]:
    """A Key spec for a number of seconds in [low, high]."""
    return {"types": (int, float), "check": lambda v: low <= v <= high, "allowed": f"seconds, {low:g}-{high:g}"}


def _modbus(value: str, where: str, _base: Path) -> ModbusTarget:
    return parse_modbus_url(value, where)


def _path(value: str, _where: str, base: Path) -> Path:
    return base / Path(value).expanduser()


def _command(value: str, where: str, _base: Path) -> tuple[str, ...]:
    return parse_command(value, where)


def _version(value: str, where: str, _base: Path) -> NutVersion:
    return parse_version(value, where)


def _tuple(value: list[str], _where: str, _base: Path) -> tuple[str, ...]:
    return tuple(value)


def _lower(value: str, _where: str, _base: Path) -> str:
    return value.lower()


def _public_ip(value: str, where: str, _base: Path) -> str:
    from nutbridge.peers.identity import check_public_ip

    return check_public_ip(value, where)


def _addresses(value: list[object]) -> bool:
    """Node addresses: an IP or host name, with an optional :port."""
    return len(value) <= 1000 and all(isinstance(a, str) and ADDRESS.match(a) for a in value)


def _ranges(value: list[object]) -> bool:
    """CIDR ranges, e.g. 10.77.0.0/24 or ::1/128."""
    import ipaddress  # here: the daemon's cold start pays for it only with [peers]

    if len(value) > 100 or not all(isinstance(r, str) for r in value):
        return False
    try:
        [ipaddress.ip_network(str(r), strict=False) for r in value]
    except ValueError:
        return False
    return True


def _argv(value: list[object]) -> bool:
    return 0 < len(value) <= 100 and all(isinstance(a, str) and a for a in value)


def _https(value: str) -> bool:
    return value.startswith("https://") and len(value) <= 500


def _http(value: str) -> bool:
    return value.startswith(("http://", "https://")) and len(value) <= 500


def _clock_time(value: str) -> bool:
    hours, sep, minutes = value.partition(":")
    return bool(sep) and hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60


def _seconds_of_day(value: str, _where: str, _base: Path) -> float:
    hours, _, minutes = value.partition(":")
    return int(hours) * 3600.0 + int(minutes) * 60.0


def _listen(value: str, where: str, _base: Path) -> tuple[str, int]:
    return parse_listen(value, where)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: a listener no other machine can reach."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(value: str, where: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) → (host, port)."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: {value!r} is not an address to listen on; write it as 127.0.0.1:8080")
    return host, int(port)


def parse_command(value: str, where: str) -> tuple[str, ...]:
    """A command line split as a shell would (no shell runs it); ``""`` means none."""
    try:
        return tuple(shlex.split(value))
    except ValueError as exc:
        raise ConfigError(f"{where}: {value!r} is not a valid command line ({exc})") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class TracerConfig:
    """``[source] kind = "tracer"``: an EPEver Tracer over Modbus."""

    kind: ClassVar[str] = "tracer"
    url: ModbusTarget | None = key(
        types=str,
        convert=_modbus,
        url=True,
        allowed="rtu:///dev/ttyUSB0?baudrate=115200, tcp://HOST:502 or rtu+tcp://HOST:PORT",
    )
    device_id: int = key(1, types=int, check=lambda v: 1 <= v <= 247, allowed="an integer 1-247")
    timeout: float = key(1.0, **seconds(0.05, 30))


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorConfig:
    """``[source] kind = "simulator"``: the built-in simulated Tracer, reached over loopback Modbus TCP."""

    kind: ClassVar[str] = "simulator"
    speed: float = key(1.0, types=(int, float), check=lambda v: 0.1 <= v <= 10_000, allowed="0.1-10000 (× real time)")
    start: float | None = key(types=str, check=_clock_time, convert=_seconds_of_day,
                              allowed="the simulated time of day to start at, HH:MM")  # fmt: skip
    timeout: float = key(1.0, **seconds(0.05, 30))


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoyConfig:
    """``[source] kind = "envoy"``: an Enphase IQ Gateway, with a token from Enphase's cloud."""

    kind: ClassVar[str] = "envoy"
    host: str = key("envoy.local", types=str, check=lambda v: bool(HOST.match(v)), allowed="a host name or address")
    serial: str | None = key(types=str, check=lambda v: v.isalnum(), allowed="the gateway's serial number")
    username: str | None = key(types=str, check=bool, allowed="your Enlighten user name (e-mail)")
    password: str | None = key(types=str, check=bool, secret=True, allowed="your Enlighten password")
    token_file: Path | None = key(
        types=str, check=bool, convert=_path, allowed="where the token is kept (default: the state folder)"
    )
    state_dir: Path | None = key(types=str, check=bool, convert=_path, allowed="a folder that is not world-writable")
    login_timeout: float = key(10.0, **seconds(5, 120))
    api_timeout: float = key(10.0, **seconds(2, 120))
    load_kwh: float = key(
        768.0, types=(int, float), check=lambda v: v >= 0, allowed="watts per kWh of battery; 0: no ups.load"
    )
    meters: bool = key(True, types=bool, allowed="true or false (false: enphase-monitor's DISABLE_METERS)")
    login_url: str = key(ENLIGHTEN_LOGIN, types=str, check=_https, allowed="an https:// URL")
    token_url: str = key(ENTREZ_TOKENS, types=str, check=_https, allowed="an https:// URL")

    @property
    def timeout(self) -> float:
        """What one poll may take: the gateway's answers, plus a token renewal's login."""
        return self.api_timeout


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerwallConfig:
    """``[source] kind = "powerwall"``: a Tesla Powerwall through a pyPowerwall proxy (it handles Tesla's login)."""

    kind: ClassVar[str] = "powerwall"
    url: str = key("http://localhost:8675", types=str, check=_http, url=True, allowed="the proxy's http(s):// URL")
    timeout: float = key(5.0, **seconds(0.5, 60))


SourceConfig = TracerConfig | SimulatorConfig | EnvoyConfig | PowerwallConfig
SOURCE_KINDS: Mapping[str, type[SourceConfig]] = {
    cls.kind: cls for cls in (TracerConfig, SimulatorConfig, EnvoyConfig, PowerwallConfig)
}


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorConfig:
    """``[monitor]``: the poll schedule and when silence becomes comms loss."""

    poll_interval: float = key(10.0, **seconds(MIN_POLL_INTERVAL, 3600))
    # enphase-monitor's POLLFREQALERT: poll faster while on battery or in nocomms (None: poll_interval).
    poll_interval_on_battery: float | None = key(None, **seconds(MIN_POLL_INTERVAL, 3600))
    # Seconds a device may stay silent before NUT is told (the port file is renamed): rides out a glitch.
    nocomms_grace: float = key(10.0, **seconds(0, 3600))


@dataclass(frozen=True, slots=True, kw_only=True)
class NutConfig:
    """``[nut]``: the port file and the NUT that reads it."""

    port_file: Path | None = key(types=str, check=bool, convert=_path, allowed="a path to the dummy-ups port file")
    # The persistent copy of the port file's hand-written lines: the port file may then live on tmpfs (/run/nut);
    # it is created from the seed when missing, and hand edits are copied back (nut/seed.py).
    seed_file: Path | None = key(
        types=str, check=bool, convert=_path, allowed="a path on persistent storage, e.g. /var/lib/nut/solar.dev"
    )
    version: NutVersion | None = key(types=str, convert=_version, allowed="a NUT version such as 2.8.1")
    # None: find the UPS in ups.conf and run upsdrvctl (not under systemd); () : never restart the driver.
    driver_restart_command: tuple[str, ...] | None = key(
        types=str, convert=_command, allowed="a command line, e.g. 'upsdrvctl start solar', or '' for none"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DataLogConfig:
    """``[datalog]``: one CSV per day in Solar Protocol v1's format; off unless ``folder`` is set."""

    folder: Path | None = key(types=str, check=bool, convert=_path, allowed="a folder for the daily CSV files")
    retention_days: int = key(
        90, types=int, check=lambda v: 0 <= v <= 36500, allowed="days to keep, 0-36500 (0 keeps every day)"
    )
    # Rows are held in memory and appended together this often (and at a stop, and at a day change): an SD
    # card is written once per window instead of once per poll. A crash loses at most the window; 0: each row
    # is appended and fsynced at once.
    flush_interval: float = key(DEFAULT_FLUSH_INTERVAL, **seconds(0, 3600))


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiConfig:
    """``[api]``: the sidecar; off unless ``listen`` is set."""

    listen: tuple[str, int] | None = key(types=str, convert=_listen, allowed="HOST:PORT, e.g. 127.0.0.1:8080")
    # HTTPS when both are set (PEM files; a key file readable by others is refused: check_tls_key).
    tls_cert: Path | None = key(types=str, check=bool, convert=_path, allowed="a PEM certificate (chain) file")
    tls_key: Path | None = key(types=str, check=bool, convert=_path, allowed="the PEM private key file")
    # The web page at / and the power flow at /flow (assets from the package; nothing fetched at run time).
    dashboard: bool = key(True, types=bool, allowed="true or false")
    # How long browsers may keep the page's script, style and chart library (their URLs change with their
    # content, so a long time is safe); 0: ask every time (If-None-Match, 304 when unchanged).
    browser_cache_seconds: int = key(
        86400, types=int, check=lambda v: 0 <= v <= 31_536_000, allowed="seconds, 0-31536000 (a year)"
    )
    # Connections open at once (503 beyond); seconds a request's head may take; idle keep-alive seconds.
    max_connections: int = key(4096, types=int, check=lambda v: 1 <= v <= 100_000, allowed="1-100000")
    head_timeout: float = key(10.0, **seconds(0.5, 300))
    keepalive_timeout: float = key(15.0, **seconds(1, 3600))
    # Reverse proxies in front of the API (a v1 node's Apache): a request from one of them is taken to come
    # from the address its X-Forwarded-For ends with, so peers are told apart (change budgets, refusal logs).
    trusted_proxies: tuple[str, ...] = key(
        (), types=list, check=_ranges, convert=_tuple, allowed='a list of CIDR ranges, e.g. ["127.0.0.1/32"]'
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PeersConfig:
    """``[peers]``: the solar network this node belongs to. The key belongs in this file (mode 0600) only."""

    network_key: str | None = key(
        types=str, check=lambda v: 8 <= len(v) <= 256, secret=True, allowed="the network's shared key, 8-256 characters"
    )
    device_list: Path | None = key(
        types=str,
        check=bool,
        convert=_path,
        allowed="a path for the device list (default: deviceList.json beside the log)",
    )
    device_list_flush_interval: float = key(DEFAULT_DEVICE_LIST_FLUSH_INTERVAL, **seconds(0, 86400))
    peer_expiry_days: float = key(
        30.0, types=(int, float), check=lambda v: 0 < v <= 3650, allowed="days, more than 0 and at most 3650"
    )
    peers: tuple[str, ...] = key(
        (), types=list, check=_addresses, convert=_tuple, allowed='a list of node addresses, e.g. ["192.0.2.7"]'
    )
    peer_port: int = key(80, types=int, check=lambda v: 0 < v < 65536, allowed="the port the network's nodes serve")
    peer_timeout: float = key(5.0, **seconds(0.1, 60))
    # Private and loopback ranges peers may be at (public unicast always may; link-local, multicast and
    # broadcast never): the same rule for posted, gossiped and configured addresses. README, "Threat model".
    allow_addresses: tuple[str, ...] = key(
        (), types=list, check=_ranges, convert=_tuple, allowed='a list of CIDR ranges, e.g. ["10.77.0.0/24"]'
    )
    max_changes_per_hour: int = key(
        12,
        types=int,
        check=lambda v: 1 <= v <= 100_000,
        allowed="changes one sender may make to the device list "
        "in an hour (a new node, new content; a node announcing itself again is none): 1-100000",
    )
    max_peers_per_round: int = key(
        250, types=int, check=lambda v: 1 <= v <= 1000, allowed="peers posted to, and asked, per round: 1-1000"
    )
    public_ip: str | None = key(
        types=str, check=bool, convert=_public_ip, allowed="the address peers reach this node at, e.g. 192.0.2.7:8080"
    )
    mac: str | None = key(types=str, check=lambda v: bool(MAC.match(v.lower())), convert=_lower,
                          allowed="this node's MAC address, 00:11:22:33:44:55")  # fmt: skip
    interface: str | None = key(
        types=str, check=lambda v: 0 < len(v) <= 15 and "/" not in v, allowed="a network interface, e.g. wlan0"
    )
    poe_log: Path | None = key(
        types=str, check=bool, convert=_path, allowed="a path for the point-of-entry log (default: poe.log by the list)"
    )
    announce: bool = key(False, types=bool, allowed="true or false")
    announce_interval: float = key(900.0, **seconds(1, 86400))
    election: bool = key(False, types=bool, allowed="true or false")
    election_interval: float = key(300.0, **seconds(1, 86400))
    election_freshness: float = key(600.0, **seconds(1, 86400))
    election_margin: float = key(
        2.0, types=(int, float), check=lambda v: 0 <= v <= 1000, allowed="scaled watts, 0-1000"
    )
    dns_update_command: tuple[str, ...] = key(
        (), types=list, check=_argv, convert=_tuple, allowed='an argument list, e.g. ["/usr/local/bin/set-dns", "{ip}"]'
    )
    dns_update_timeout: float = key(30.0, **seconds(1, 600))
    election_max_watts: float = key(
        1000.0, types=(int, float), check=lambda v: 0 < v <= 1_000_000, allowed="scaled watts a node may report"
    )

    def device_list_path(self, data_dir: Path) -> Path:
        """The device list's file."""
        return self.device_list or data_dir / "deviceList.json"

    def poe_log_path(self, data_dir: Path) -> Path:
        """The point-of-entry log's file."""
        return self.poe_log or self.device_list_path(data_dir).with_name("poe.log")


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """``[node]``: this node's identity, from an existing Solar Protocol local.json or set here."""

    local_json: Path | None = key(types=str, check=bool, convert=_path, allowed="a path to a Solar Protocol local.json")
    # v1's getRemoteData.py caches each peer's days there; opendata.php?server= serves them
    peer_data: Path | None = key(
        types=str, check=bool, convert=_path, allowed="a folder of peers' data (default: data/ beside local.json)"
    )
    name: str | None = key(types=str, check=lambda v: 0 < len(v) <= 64, allowed="the node's name, 1-64 characters")
    description: str | None = key(types=str, check=lambda v: len(v) <= 1000, allowed="at most 1000 characters")
    location: str | None = key(types=str, check=lambda v: len(v) <= 200, allowed="at most 200 characters")
    city: str | None = key(types=str, check=lambda v: len(v) <= 100, allowed="at most 100 characters")
    country: str | None = key(types=str, check=lambda v: len(v) <= 100, allowed="at most 100 characters")
    bgColor: str | None = key(types=str, check=lambda v: len(v) <= 32, allowed="a CSS colour")
    pvWatts: float | None = key(
        types=(int, float), check=lambda v: 0 < v <= 100_000, allowed="the PV array's rated watts"
    )
    pvVolts: float | None = key(
        types=(int, float), check=lambda v: 0 < v <= 10_000, allowed="the PV array's rated volts"
    )

    def peer_data_folder(self) -> Path | None:
        """Where v1's getRemoteData.py leaves peers' data: ``peer_data``, else ``data/`` beside local.json."""
        return self.peer_data or (self.local_json.parent / "data" if self.local_json else None)

    def info(self) -> dict[str, object]:
        """local.json's content, with the keys set here on top."""
        from nutbridge.node import KEYS, load_local_json

        info: dict[str, object] = load_local_json(self.local_json) if self.local_json else {}
        info.update({k: getattr(self, k) for k in KEYS if getattr(self, k) is not None})
        return info


def _mqtt_url(value: str) -> bool:
    return value.startswith(("mqtt://", "mqtts://")) and len(value) <= 500


@dataclass(frozen=True, slots=True, kw_only=True)
class PubSubConfig:
    """``[pubsub]``: PiCloud-compatible WebSocket pub/sub on the sidecar (/subscribe, /publish, /info)."""

    api_key: str | None = key(
        types=str, check=lambda v: 8 <= len(v) <= 256, secret=True, allowed="a key of 8-256 characters"
    )
    enabled: bool = key(False, types=bool, allowed="true or false (on without a key only on a loopback listener)")
    queue: int = key(64, types=int, check=lambda v: 1 <= v <= 10_000, allowed="messages a subscriber may lag, 1-10000")
    # Bytes a subscriber may lag: its queue and its socket's write buffer (a 64 KiB publish of "<" is a 390 KB
    # frame once escaped as Go does, so messages alone do not bound memory); beyond, it is closed with 1013.
    queue_bytes: int = key(2**20, types=int, check=lambda v: 2**16 <= v <= 2**30, allowed="bytes, 65536-1073741824")
    max_frame: int = key(64 * 1024, types=int, check=lambda v: 256 <= v <= 1024 * 1024, allowed="bytes, 256-1048576")
    info_interval: float = key(5.0, **seconds(0.5, 3600))
    max_subscribers: int = key(2000, types=int, check=lambda v: 1 <= v <= 100_000, allowed="1-100000")


@dataclass(frozen=True, slots=True, kw_only=True)
class LineSocketConfig:
    """``[linesocket]``: the TCP line protocol Hubitat-style clients speak."""

    listen: tuple[str, int] | None = key(types=str, convert=_listen, allowed="HOST:PORT, e.g. 127.0.0.1:61000")
    max_connections: int = key(32, types=int, check=lambda v: 1 <= v <= 10_000, allowed="1-10000")
    # Connections one client address may hold (unset: a quarter of max_connections, at least 8), so that one
    # host cannot take every slot; when all are taken, the connection idle the longest makes room.
    max_per_client: int | None = key(types=int, check=lambda v: 1 <= v <= 10_000, allowed="1-10000")
    # Clients may poll as seldom as once an hour (the Hubitat example's longest interval): shorter would only
    # make them reconnect, and idle connections no longer lock anyone out.
    idle_timeout: float = key(3600.0, **seconds(1, 86400))
    max_line: int = key(256, types=int, check=lambda v: 16 <= v <= 65536, allowed="bytes, 16-65536")


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttConfig:
    """``[mqtt]``: state to an MQTT broker, with Home Assistant discovery."""

    url: str | None = key(types=str, check=_mqtt_url, url=True, allowed="mqtt://[user:password@]host[:port]")
    topic_prefix: str = key(
        "nutbridge", types=str, check=lambda v: bool(TOPIC.match(v)), allowed="a topic without + # or spaces"
    )
    discovery_prefix: str = key(
        "homeassistant", types=str, check=lambda v: bool(TOPIC.match(v)), allowed="Home Assistant's discovery prefix"
    )
    node_id: str | None = key(
        types=str, check=lambda v: bool(re.match(r"^[A-Za-z0-9_-]{1,64}$", v)), allowed="letters, digits, _ and -"
    )
    keepalive: float = key(60.0, **seconds(5, 3600))


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlConfig:
    """``[control]``: switching the Tracer's load output over the API; off unless a secret is set."""

    secret: str | None = key(
        types=str, check=lambda v: 16 <= len(v) <= 256, secret=True, allowed="a secret of 16-256 characters"
    )


def _fixture() -> Any:
    return key(types=str, check=lambda v: len(v) <= 1024 * 1024, allowed="the answer's text; empty: the query fails")


@dataclass(frozen=True, slots=True, kw_only=True)
class TestModeConfig:
    """``[test]``: enphase-monitor's TEST mode; the gateway's answers may be given as its TEST_* fixtures."""

    enabled: bool = key(False, types=bool, allowed="true or false")
    sess: str | None = _fixture()
    token: str | None = _fixture()
    relay: str | None = _fixture()
    live: str | None = _fixture()
    reports: str | None = _fixture()
    secctrl: str | None = _fixture()
    info: str | None = _fixture()

    def fixtures(self) -> dict[str, str | None]:
        """The fixtures set, by enphase-monitor's names without TEST_ (None: the shipped answer)."""
        return {name: getattr(self, name) for name in ("sess", "token", "relay", "live", "reports", "secctrl", "info")}


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Everything the daemon needs, validated."""

    source: SourceConfig | None = None
    monitor: MonitorConfig = MonitorConfig()
    nut: NutConfig = NutConfig()
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


SectionClass = (
    type[MonitorConfig]
    | type[NutConfig]
    | type[DataLogConfig]
    | type[ApiConfig]
    | type[PeersConfig]
    | type[NodeConfig]
    | type[TestModeConfig]
    | type[PubSubConfig]
    | type[LineSocketConfig]
    | type[MqttConfig]
    | type[ControlConfig]
)
SECTIONS: Mapping[str, SectionClass] = {
    "monitor": MonitorConfig,
    "nut": NutConfig,
    "datalog": DataLogConfig,
    "api": ApiConfig,
    "peers": PeersConfig,
    "node": NodeConfig,
    "test": TestModeConfig,
    "pubsub": PubSubConfig,
    "linesocket": LineSocketConfig,
    "mqtt": MqttConfig,
    "control": ControlConfig,
}
RENAMED = {"monitor.nocomms_after": "monitor.nocomms_grace (seconds of silence, default 10)"}


def keys_of(cls: type) -> dict[str, Key]:
    """The TOML keys a section dataclass reads."""
    return {f.name: f.metadata["key"] for f in dataclasses.fields(cls) if "key" in f.metadata}


def section_class(section: str, table: Mapping[str, Any], origin: str) -> type:
    """The dataclass that reads ``[section]``; for ``[source]``, the one its ``kind`` names."""
    if section == "source":
        kind = table.get("kind", "tracer")
        if kind not in SOURCE_KINDS:
            raise ConfigError(f"{origin}: source.kind = {kind!r} is not allowed; use {', '.join(SOURCE_KINDS)}")
        return SOURCE_KINDS[kind]
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
        stray_bool = isinstance(value, bool) and spec.types is not bool  # TOML's true is no number
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
    if source is not None:
        config = replace(config, source=TracerConfig(url=parse_modbus_url(source, "--source")))
    elif simulate and not isinstance(config.source, SimulatorConfig):
        timeout = (config.source or SimulatorConfig()).timeout
        config = replace(config, source=SimulatorConfig(timeout=timeout))
    if port_file is not None:
        config = replace(config, nut=replace(config.nut, port_file=Path(port_file).expanduser().absolute()))
    if nut_version is not None:
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
    if config.nut.port_file is None:
        raise ConfigError(f"{config.origin}: no port file; set nut.port_file or pass --port-file PATH")
    check_seed(config)
    if config.source is None or (isinstance(config.source, TracerConfig) and config.source.url is None):
        raise ConfigError(f"{config.origin}: no source; set source.url, or pass --source URL or --simulate")
    if isinstance(config.source, EnvoyConfig):
        missing = [k for k in ("serial", "username", "password") if getattr(config.source, k) is None]
        if missing and not config.test.enabled:
            raise ConfigError(f"{config.origin}: the Enphase gateway needs source.{', source.'.join(missing)}")
    return config
