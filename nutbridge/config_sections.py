"""The configuration's other sections, one frozen dataclass each: monitor, nut, power, datalog, api, peers,
node, pubsub, linesocket, mqtt, control and TEST mode."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nutbridge.config_keys import (
    MIN_POLL_INTERVAL,
    TOPIC,
    _addresses,
    _argv,
    _command,
    _listen,
    _lower,
    _path,
    _public_ip,
    _ranges,
    _tuple,
    _version,
    key,
    seconds,
)
from nutbridge.node import MAC

if TYPE_CHECKING:
    from nutbridge.nut.version import NutVersion

NUT_MODES = ("portfile", "driver")
DEFAULT_FLUSH_INTERVAL = 300.0  # bench/flash_writes.py: what keeps a default install under 20 MB a day


DEFAULT_DEVICE_LIST_FLUSH_INTERVAL = 3600.0  # the same bench: a node with peers stays under it too


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
    """``[nut]``: how NUT sees the polls (the port file, or the driver socket) and the NUT that reads them."""

    # "portfile": dummy-ups reads the port file; "driver": nutbridge is NUT's driver itself (nutbridge-driver sets
    # it, and takes the socket's place from NUT's state path; no port file).
    mode: str = key(
        "portfile", types=str, check=lambda v: v in NUT_MODES, allowed='"portfile" or "driver" (nutbridge-driver)'
    )
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
class PowerConfig:
    """``[power]``: what decides LB besides battery.charge.low (power.py): the device's own low-voltage disconnect,
    which must never cut the host first (LowVoltage), and the charge expected at sunrise (outlook.py)."""

    # volts above the disconnect, for each 12 V of the battery's nominal voltage (0: only the drain's part)
    disconnect_margin: float = key(
        0.3, types=(int, float), check=lambda v: 0 <= v <= 3, allowed="volts per 12 V of battery, 0-3"
    )
    # what the host needs from LB to halted (upsmon's FINALDELAY, then the OS's shutdown)
    shutdown_seconds: float = key(180.0, **seconds(0, 3600))

    # The days of the data log the next sunrise is estimated from (the median of their PV starts; outlook.py).
    sunrise_days: int = key(7, types=int, check=lambda v: 3 <= v <= 60, allowed="days, 3-60")
    # LB while on battery when the expected charge at sunrise is below this (%), so the morning boot has it;
    # off unless set. Needs the data log (datalog.folder), which the sunrise is learnt from.
    sunrise_reserve: float | None = key(
        types=(int, float),
        check=lambda v: 0 < v < 100,
        convert=lambda v, *_: float(v),
        allowed="a percentage above 0 and below 100",
    )

    # The power cycle (docs/nut.md "Power back by itself"): `nutbridge killpower` raises the controller's
    # low-voltage disconnect above the battery so it cuts the load terminal, and sets its reconnect to
    # return_voltage so it brings the host back by itself. Only right when the host runs from the load terminal.
    cycle: bool = key(False, types=bool, allowed="true or false")
    # volts for each 12 V of battery at which the load comes back: one only charging reaches (a resting lead-acid
    # battery rebounds to about 12.2 V, a boot loop below that), under the boost reconnect (13.2 V by default)
    return_voltage: float = key(
        12.8,
        types=(int, float),
        check=lambda v: 12.3 <= v <= 13.5,
        convert=lambda v, *_: float(v),
        allowed="volts per 12 V of battery, 12.3-13.5",
    )


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
