"""Configuration: TOML schema, clear errors, secrets and file modes, command-line overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from nutbridge.config import Config, config_path, load, with_overrides
from nutbridge.errors import ConfigError

GOOD = """\
[source]
url = "rtu:///dev/ttyUSB0?baudrate=9600&device_id=3"
timeout = 0.5

[monitor]
poll_interval = 2.5
nocomms_after = 3

[nut]
port_file = "solar.dev"
driver_restart_command = "upsdrvctl start solar"
"""


def write(tmp_path: Path, text: str, mode: int = 0o644) -> Path:
    path = tmp_path / "nutbridge-solar.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_good_file(tmp_path: Path) -> None:
    config = load(write(tmp_path, GOOD))
    assert config.source is not None
    assert (config.source.device, config.source.baudrate, config.source.device_id) == ("/dev/ttyUSB0", 9600, 3)
    assert (config.poll_interval, config.nocomms_after, config.timeout) == (2.5, 3, 0.5)
    assert config.port_file == tmp_path / "solar.dev"  # relative to the config's folder, like ups.conf's port
    assert config.driver_restart_command == "upsdrvctl start solar"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[monitor]\npoll_interval = 0.1\n", r"monitor\.poll_interval = 0\.1 is not allowed; use seconds, 0\.2-3600"),
        ("[monitor]\nnocomms_after = true\n", r"monitor\.nocomms_after = True is not allowed"),
        ("[monitor]\npoll = 3\n", r"unknown key monitor\.poll; allowed in \[monitor\]: poll_interval, nocomms_after"),
        ("[envoy]\nhost = 'x'\n", r"unknown section \[envoy\]; allowed: source, monitor, nut"),
        ("[source]\nurl = 'http://x'\n", r"source\.url: 'http://x' is not a Modbus URL; allowed schemes: rtu, tcp"),
        ("[source]\nurl = 'tcp://h:502?speed=1'\n", r"unknown option 'speed'"),
        ("[source]\nurl = 'tcp://h?device_id=0'\n", r"device_id must be 1-247"),
        ("[source]\nurl = 'rtu://dev/ttyUSB0'\n", r"rtu:///dev/ttyUSB0 \(three slashes\)"),
        ("[source\nurl=", r"not valid TOML"),
    ],
)
def test_errors_name_file_key_and_what_is_allowed(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as err:
        load(path)
    assert str(path) in str(err.value)


def test_a_secret_in_a_group_readable_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("[nut]", "[nut]\npassword = 'hunter2'"), mode=0o640)
    with pytest.raises(ConfigError, match=r"holds a secret \(nut\.password\) and is readable by group or others") as e:
        load(path)
    assert "hunter2" not in str(e.value)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=r"unknown key nut\.password"):  # past the mode check: the schema
        load(path)


def test_readable_file_without_secrets_is_fine(tmp_path: Path) -> None:
    assert load(write(tmp_path, GOOD, mode=0o644)).nocomms_after == 3


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
        load(write(tmp_path, GOOD)), source="tcp://10.0.0.9:1502", port_file="x.dev", poll_interval=0.2
    )
    assert config.source is not None and (config.source.host, config.source.port) == ("10.0.0.9", 1502)
    assert config.port_file == Path("x.dev").absolute()
    assert config.poll_interval == 0.2


def test_no_config_file_needed_for_a_try() -> None:
    config = with_overrides(Config(), simulate=True, port_file="./solar.dev", poll_interval=1)
    assert config.simulate and config.poll_interval == 1


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"simulate": True}, "no port file"),
        ({"port_file": "x"}, "no source"),
        ({"port_file": "x", "simulate": True, "poll_interval": 0.1}, r"--poll-interval 0\.1: use seconds, 0\.2-3600"),
        ({"port_file": "x", "simulate": True, "source": "tcp://h"}, "exclude each other"),
    ],
)
def test_override_errors(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        with_overrides(Config(), **kw)  # type: ignore[arg-type]
