"""Configuration: sections as frozen dataclasses, clear errors, declared secrets and file modes, overrides."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from nutbridge.config import (
    Config,
    config_path,
    from_mapping,
    keys_of,
    load,
    with_overrides,
)
from nutbridge.config_sections import MonitorConfig, NutConfig
from nutbridge.devices.tracer.config import TracerConfig
from nutbridge.errors import ConfigError
from nutbridge.nut.version import NutVersion
from nutbridge.simulator.config import SimulatorConfig

GOOD = """\
[source]
kind = "tracer"
url = "rtu:///dev/ttyUSB0?baudrate=9600&device_id=3"
timeout = 0.5

[monitor]
poll_interval = 2.5
nocomms_grace = 20

[nut]
port_file = "solar.dev"
version = "2.8.1"
driver_restart_command = "upsdrvctl -u root start 'my solar'"
"""


def write(tmp_path: Path, text: str, mode: int = 0o644) -> Path:
    path = tmp_path / "nutbridge-solar.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_good_file(tmp_path: Path) -> None:
    config = load(write(tmp_path, GOOD))
    assert isinstance(config.source, TracerConfig) and config.source.url is not None
    url = config.source.url
    assert (url.device, url.baudrate, url.device_id, config.source.timeout) == ("/dev/ttyUSB0", 9600, 3, 0.5)
    assert config.monitor == MonitorConfig(poll_interval=2.5, nocomms_grace=20)
    assert config.nut.port_file == tmp_path / "solar.dev"  # relative to the config's folder, like ups.conf's port
    assert config.nut.version == NutVersion(2, 8, 1)
    assert config.nut.driver_restart_command == ("upsdrvctl", "-u", "root", "start", "my solar")


def test_defaults_ride_out_a_glitch() -> None:
    assert Config().monitor == MonitorConfig(poll_interval=10.0, nocomms_grace=10.0)
    assert Config().nut == NutConfig()


@pytest.mark.parametrize(("written", "coalesce"), [("", None), ('coalesce = "auto"', None), ("coalesce = true", True),
                                                  ("coalesce = false", False)])  # fmt: skip
def test_tracer_coalesce_is_auto_unless_set(written: str, coalesce: bool | None) -> None:
    config = load_text(f"[source]\nurl = 'tcp://h'\n{written}\n")
    assert isinstance(config.source, TracerConfig) and config.source.coalesce is coalesce


def test_simulator_kind(tmp_path: Path) -> None:
    config = load(write(tmp_path, '[source]\nkind = "simulator"\nspeed = 60\n'))
    assert config.source == SimulatorConfig(speed=60)


def test_sections_never_share_a_key() -> None:
    # the same key name in two sections is two fields; nothing is merged into one namespace
    assert "timeout" in keys_of(TracerConfig) and "timeout" not in keys_of(MonitorConfig)
    with pytest.raises(ConfigError, match=r"unknown key monitor\.timeout"):
        with_overrides(load_text("[monitor]\ntimeout = 1\n"), simulate=True, port_file="x")


def load_text(text: str) -> Config:
    return from_mapping(tomllib.loads(text), "test.toml", base_dir=Path("/nonexistent"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[monitor]\npoll_interval = 0.1\n", r"monitor\.poll_interval = 0\.1 is not allowed; use seconds, 0\.2-3600"),
        ("[monitor]\nnocomms_grace = true\n", r"monitor\.nocomms_grace = True is not allowed"),
        ("[monitor]\nnocomms_after = 3\n", r"monitor\.nocomms_after was replaced by monitor\.nocomms_grace"),
        (
            "[monitor]\npoll = 3\n",
            r"unknown key monitor\.poll; allowed in \[monitor\]: poll_interval, ",
        ),
        ("[envoy]\nhost = 'x'\n", r"unknown section \[envoy\]; allowed: source, monitor, nut"),
        ("[source]\nkind = 'solaredge'\n", r"source\.kind = 'solaredge' is not allowed; use tracer, simulator, envoy"),
        ("[source]\nkind = 'simulator'\nurl = 'tcp://h'\n", r"unknown key source\.url; allowed in \[source\]: speed"),
        ("[source]\nurl = 'http://x'\n", r"source\.url: 'http://x' is not a Modbus URL; allowed schemes: rtu, tcp"),
        ("[source]\nurl = 'tcp://h:502?speed=1'\n", r"unknown option 'speed'"),
        ("[source]\nurl = 'tcp://h?device_id=0'\n", r"device_id must be 1-247"),
        ("[source]\nurl = 'rtu://dev/ttyUSB0'\n", r"rtu:///dev/ttyUSB0 \(three slashes\)"),
        ("[source]\nurl = 'rtu:///dev/ttyUSB0?bytesize=9'\n", r"bytesize=9 in .* is not allowed; use 5, 6, 7 or 8"),
        ("[source]\nurl = 'rtu:///dev/ttyUSB0?stopbits=7'\n", r"stopbits=7 in .* is not allowed; use 1 or 2"),
        ("[source]\nurl = 'rtu:///dev/ttyUSB0?baudrate=-1'\n", r"baudrate=-1 in .* is not allowed; use 50-4000000"),
        ("[source]\nurl = 'rtu:///dev/ttyUSB0?parity=X'\n", r"parity=X in .* is not allowed; use N, E or O"),
        ('[nut]\ndriver_restart_command = "upsdrvctl start \'solar"\n', r"is not a valid command line \(No closing"),
        ("[source]\ncoalesce = 'yes'\n", r"source\.coalesce = 'yes' is not allowed; use \"auto\", true"),
        ("[source]\ncoalesce = 1\n", r"source\.coalesce = 1 is not allowed"),
        ("[nut]\nversion = 'latest'\n", r"nut\.version: 'latest' is not a NUT version"),
        ("[source\nurl=", r"not valid TOML"),
        ("[power]\nsunrise_reserve = 100\n", r"power\.sunrise_reserve = 100 is not allowed; use a percentage"),
        ("[power]\nsunrise_days = 2\n", r"power\.sunrise_days = 2 is not allowed; use days, 3-60"),
    ],
)
def test_errors_name_file_key_and_what_is_allowed(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as err:
        load(path)
    assert str(path) in str(err.value)


def test_a_url_with_a_password_is_a_secret_and_never_echoed(tmp_path: Path) -> None:
    text = "[source]\nurl = 'tcp://admin:hunter2@192.0.2.1:502?speed=1'\n"
    path = write(tmp_path, text, mode=0o640)
    with pytest.raises(ConfigError, match=r"holds a secret \(source\.url\) and is readable by group or others") as e:
        load(path)
    assert "hunter2" not in str(e.value)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=r"Modbus has no user or password") as e:
        load(path)
    assert "hunter2" not in str(e.value) and "admin:***@" in str(e.value)
    with pytest.raises(ConfigError) as e:
        with_overrides(Config(), source="tcp://u:hunter2@h:502?x=1", port_file="x")
    assert "hunter2" not in str(e.value)


def test_secrets_are_declared_by_the_schema_not_guessed_from_names(tmp_path: Path) -> None:
    # a key merely called "password" is an unknown key, reported by name, never by value
    path = write(tmp_path, "[nut]\npassword = 'hunter2'\n", mode=0o644)
    with pytest.raises(ConfigError, match=r"unknown key nut\.password") as e:
        load(path)
    assert "hunter2" not in str(e.value)


def test_readable_file_without_secrets_is_fine(tmp_path: Path) -> None:
    assert load(write(tmp_path, GOOD, mode=0o644)).monitor.nocomms_grace == 20


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "nope.toml")


def test_ups_name_finds_its_file_in_nut_confpath(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUT_CONFPATH", str(tmp_path))
    assert config_path("solar") == tmp_path / "nutbridge-solar.toml"
    monkeypatch.delenv("NUT_CONFPATH")
    assert config_path("solar") == Path("/etc/nut/nutbridge-solar.toml")
    with pytest.raises(ConfigError, match="UPS name"):
        config_path("../etc/passwd")


def test_overrides_win(tmp_path: Path) -> None:
    config = with_overrides(
        load(write(tmp_path, GOOD)),
        source="tcp://10.0.0.9:1502",
        port_file="x.dev",
        poll_interval=0.2,
        nut_version="2.8.5",
    )
    assert isinstance(config.source, TracerConfig) and config.source.url is not None
    assert (config.source.url.host, config.source.url.port) == ("10.0.0.9", 1502)
    assert config.nut.port_file == Path("x.dev").absolute()
    assert config.monitor.poll_interval == 0.2 and config.monitor.nocomms_grace == 20
    assert config.nut.version == NutVersion(2, 8, 5)
    simulated = with_overrides(load(write(tmp_path, GOOD)), simulate=True)
    assert simulated.source == SimulatorConfig(timeout=0.5)


def test_no_config_file_needed_for_a_try() -> None:
    config = with_overrides(Config(), simulate=True, port_file="./solar.dev", poll_interval=1)
    assert isinstance(config.source, SimulatorConfig) and config.monitor.poll_interval == 1


def test_the_sunrise_reserve_needs_the_data_log_it_learns_the_sunrise_from(tmp_path: Path) -> None:
    path = write(tmp_path, "[source]\nkind = 'simulator'\n[nut]\nport_file = 'x'\n[power]\nsunrise_reserve = 30\n")
    with pytest.raises(ConfigError, match=r"power\.sunrise_reserve learns the sunrise from the data log"):
        with_overrides(load(path))
    config = with_overrides(load(path), data_dir=str(tmp_path))
    assert config.power.sunrise_reserve == 30.0
    assert config.power.sunrise_days == 7


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"simulate": True}, "no port file"),
        ({"port_file": "x"}, "no source"),
        ({"port_file": "x", "simulate": True, "poll_interval": 0.1}, r"--poll-interval 0\.1: use seconds, 0\.2-3600"),
        ({"port_file": "x", "simulate": True, "source": "tcp://h"}, "exclude each other"),
        ({"port_file": "x", "simulate": True, "nut_version": "2"}, "--nut-version: '2' is not a NUT version"),
    ],
)
def test_override_errors(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        with_overrides(Config(), **kw)  # type: ignore[arg-type]


def test_the_gateway_needs_its_serial_and_account_except_in_test_mode(tmp_path: Path) -> None:
    text = '[source]\nkind = "envoy"\nusername = "me@example.org"\n[nut]\nport_file = "x.dev"\n'
    with pytest.raises(ConfigError, match=r": the Enphase gateway needs source\.serial, source\.password$"):
        with_overrides(load(write(tmp_path, text)))
    with pytest.raises(ConfigError, match=r": no source; set source\.url, or pass --source URL or --simulate$"):
        with_overrides(load(write(tmp_path, '[source]\nkind = "tracer"\n[nut]\nport_file = "x.dev"\n')))
    test_mode = with_overrides(load(write(tmp_path, text + "[test]\nenabled = true\n")))
    assert test_mode.test.enabled and test_mode.source is not None and test_mode.source.kind == "envoy"


def test_seed_file_and_flush_interval(tmp_path: Path) -> None:
    text = '[nut]\nport_file = "/run/nut/solar.dev"\nseed_file = "solar.dev"\n[datalog]\nflush_interval = 60\n'
    config = with_overrides(load(write(tmp_path, text)), simulate=True)
    assert config.nut.seed_file == tmp_path / "solar.dev" and config.datalog.flush_interval == 60
    assert with_overrides(config, flush_interval=0).datalog.flush_interval == 0  # --flush-interval wins
    assert Config().datalog.flush_interval == 300  # the default: under 20 MB a day (bench/flash_writes.py)
    with pytest.raises(ConfigError, match="--flush-interval 4000: use seconds, 0-3600"):
        with_overrides(config, flush_interval=4000)
    with pytest.raises(ConfigError, match=r"datalog\.flush_interval = -1 is not allowed; use seconds, 0-3600"):
        load(write(tmp_path, "[datalog]\nflush_interval = -1\n"))
    for same in ("/run/nut/solar.dev", "/run/nut/solar.dev-nocomms"):
        same_file = load(write(tmp_path, text.replace('"solar.dev"', f'"{same}"')))
        with pytest.raises(ConfigError, match=r"nut\.seed_file must be another file than the port file"):
            with_overrides(same_file, simulate=True)


def test_the_sample_config_loads() -> None:
    config = load(Path(__file__).parent.parent / "etc" / "nutbridge-solar.toml")
    assert isinstance(config.source, TracerConfig) and config.monitor == MonitorConfig()
    assert config.nut.port_file == Path("/var/lib/nut/solar.dev")


def test_datalog_section_and_data_dir(tmp_path: Path) -> None:
    config = load(write(tmp_path, "[datalog]\nfolder = 'log'\nretention_days = 30\n"))
    assert (config.datalog.folder, config.datalog.retention_days) == (tmp_path / "log", 30)
    assert Config().datalog.folder is None  # off unless asked for
    moved = with_overrides(config, simulate=True, port_file="x", data_dir="elsewhere")
    assert moved.datalog.folder == Path("elsewhere").absolute() and moved.datalog.retention_days == 30
    with pytest.raises(ConfigError, match=r"datalog\.retention_days = -1 is not allowed; use days to keep"):
        load(write(tmp_path, "[datalog]\nretention_days = -1\n"))


def test_the_network_key_is_a_declared_secret(tmp_path: Path) -> None:
    text = "[peers]\nnetwork_key = 'correct horse battery staple'\n"
    path = write(tmp_path, text, mode=0o644)
    with pytest.raises(ConfigError, match=r"holds a secret \(peers\.network_key\)") as e:
        load(path)
    assert "horse" not in str(e.value)
    path.chmod(0o600)
    assert load(path).peers.network_key == "correct horse battery staple"
    with pytest.raises(ConfigError, match=r"peers\.network_key = <hidden> is not allowed") as e:
        load(write(tmp_path, "[peers]\nnetwork_key = 'short'\n", mode=0o600))
    assert "short" not in str(e.value)


def test_node_identity_from_local_json_and_the_file(tmp_path: Path) -> None:
    (tmp_path / "local.json").write_text('{"name": "From File", "pvWatts": 100, "city": "Here"}')
    config = load(write(tmp_path, "[node]\nlocal_json = 'local.json'\nname = 'Set Here'\n"))
    assert config.node.info() == {"name": "Set Here", "pvWatts": 100, "city": "Here"}
    (tmp_path / "local.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"local\.json: not a JSON object of node settings"):
        config.node.info()
    with pytest.raises(ConfigError, match=r"node\.pvWatts = 0 is not allowed"):
        load(write(tmp_path, "[node]\npvWatts = 0\n"))


def test_the_peer_tasks_are_off_until_asked_for_and_checked(tmp_path: Path) -> None:
    peers = Config().peers
    assert (peers.announce, peers.election) == (False, False)
    assert (peers.announce_interval, peers.election_interval) == (900, 300)  # v1: cron every 15 and 5 minutes
    text = (
        "[datalog]\nfolder = 'log'\n[api]\nlisten = '0.0.0.0:80'\n"
        "[peers]\nnetwork_key = 'correct horse battery staple'\nannounce = true\nelection = true\n"
        "peers = ['192.0.2.7', 'solarprotocol.net', '[2001:db8::7]:8080']\npublic_ip = '192.0.2.8:8080'\n"
        "mac = 'B8:27:EB:00:00:01'\ndns_update_command = ['/usr/local/bin/set-dns', '{ip}']\n"
    )
    config = with_overrides(load(write(tmp_path, text, mode=0o600)), simulate=True, port_file="x")
    assert config.peers.peers == ("192.0.2.7", "solarprotocol.net", "[2001:db8::7]:8080")
    assert (config.peers.public_ip, config.peers.mac) == ("192.0.2.8:8080", "b8:27:eb:00:00:01")
    assert config.peers.dns_update_command == ("/usr/local/bin/set-dns", "{ip}")
    assert config.peers.poe_log_path(tmp_path / "log") == tmp_path / "log" / "poe.log"
    for bad, message in (
        ("announce = 1", r"peers\.announce = 1 is not allowed; use true or false"),
        ("peers = ['http://x/']", r"peers\.peers = \['http://x/'\] is not allowed; use a list of node addresses"),
        ("public_ip = 'example.org'", r"peers\.public_ip: ip: not an IPv4 or IPv6 address"),
        ("dns_update_command = 'set-dns {ip}'", r"use an argument list"),
        ("election_interval = 0", r"peers\.election_interval = 0 is not allowed; use seconds, 1-86400"),
    ):
        with pytest.raises(ConfigError, match=message):
            load(write(tmp_path, f"[peers]\n{bad}\n"))
    with pytest.raises(ConfigError, match=r"peers\.announce needs peers\.network_key and api\.listen"):
        with_overrides(load_text("[peers]\nannounce = true\n"), simulate=True, port_file="x")
    with pytest.raises(ConfigError, match=r"peers\.election needs peers\.announce"):
        with_overrides(replace(config, peers=replace(config.peers, announce=False)), simulate=True, port_file="x")


def test_the_live_feeds_are_off_until_configured_and_pubsub_is_never_open_to_the_network(tmp_path: Path) -> None:
    config = Config()
    assert config.pubsub.api_key is None and not config.pubsub.enabled
    assert (config.linesocket.listen, config.mqtt.url, config.control.secret) == (None, None, None)
    lan = "[datalog]\nfolder = 'log'\n[api]\nlisten = '0.0.0.0:8080'\n"
    with pytest.raises(ConfigError, match=r"pub/sub without pubsub\.api_key would let anyone"):
        with_overrides(load_text(lan + "[pubsub]\nenabled = true\n"), simulate=True, port_file="x")
    local = with_overrides(load_text(lan.replace("0.0.0.0", "127.0.0.1") + "[pubsub]\nenabled = true\n"),
                           simulate=True, port_file="x")  # fmt: skip
    assert local.pubsub.enabled
    with pytest.raises(ConfigError, match=r"served on the API: set api\.listen"):
        with_overrides(load_text("[control]\nsecret = 'a secret of sixteen+'\n"), simulate=True, port_file="x")
    with pytest.raises(ConfigError, match=r"mqtt\.url = 'http://x' is not allowed"):
        load_text("[mqtt]\nurl = 'http://x'\n")
