"""nutbridge-driver: NUT's driver flags, the ups.conf section it reads, and a real start and stop through the
machine's upsdrvctl (2.8.0) with a private ups.conf (NUT_CONFPATH, NUT_STATEPATH, NUT_ALTPIDPATH of its own)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nutbridge.config_sections import NutConfig
from nutbridge.devices.tracer.config import TracerConfig
from nutbridge.driver_cmd import Flags, UsageError, parse_flags
from nutbridge.driver_section import Paths, Section, driver_config, hand_set, read_section, static_variables
from nutbridge.errors import ConfigError
from nutbridge.simulator.config import SimulatorConfig
from tests.nut_stack import START_TIMEOUT, STOP_TIMEOUT, UPSDRVCTL, kill_pid, pid_alive, read_pid, wait_for

DRIVER = Path(sys.executable).parent / "nutbridge-driver"


# -- flags, as drivers/main.c parses them


def test_flags_as_upsdrvctl_passes_them() -> None:
    assert parse_flags(["-DD", "-a", "solar", "-u", "root"]) == Flags(ups="solar", debug=2, user="root")
    assert parse_flags(["-asolar", "-FF", "-x", "pollinterval=5", "-x", "nolock"]) == Flags(
        ups="solar", foreground=2, params={"pollinterval": "5", "nolock": "enabled"}
    )
    assert parse_flags(["-a", "solar", "-F", "-B"]).foreground == 0
    assert parse_flags(["-V"]).version
    assert parse_flags(["-a", "solar", "-k"]).kill


def test_c_takes_a_leading_part_of_exit_or_reload() -> None:
    assert parse_flags(["-a", "solar", "-c", "exit"]).command == "exit"
    assert parse_flags(["-a", "solar", "-c", "rel"]).command == "reload"
    for bad in (["-c", "restart"], ["-c", ""], ["-Z"], ["-a"], ["solar"], ["-r", "/jail"], ["-i", "0"]):
        with pytest.raises(UsageError):
            parse_flags(bad)


def test_paths_follow_nut_environment() -> None:
    paths = Paths.of("solar", {"NUT_STATEPATH": "/tmp/st", "NUT_ALTPIDPATH": "/tmp/pid"})
    assert (paths.socket, paths.pidfile) == (Path("/tmp/st/nutbridge-solar"), Path("/tmp/pid/nutbridge-solar.pid"))
    debian = Paths.of("solar", {})
    assert (debian.socket, debian.pidfile) == (Path("/run/nut/nutbridge-solar"), Path("/run/nut/nutbridge-solar.pid"))


# -- the ups.conf section

UPS_CONF = """\
user = nut
[other]
  driver = dummy-ups
  port = other.dev
[solar]
  driver = nutbridge
  port = "tcp://192.0.2.7:502"
  desc = "the shed"
  pollinterval = 5
  override.battery.charge.low = 30
"""


def a_confpath(tmp_path: Path, text: str = UPS_CONF) -> Path:
    (tmp_path / "ups.conf").write_text(text)
    return tmp_path


def test_section_with_x_over_it(tmp_path: Path) -> None:
    section = read_section("solar", {"pollinterval": "7"}, a_confpath(tmp_path))
    assert section.entries["pollinterval"] == "7"
    assert section.entries["port"] == "tcp://192.0.2.7:502"
    assert section.globals == {"user": "nut"}


def test_a_missing_section_or_another_driver_is_refused(tmp_path: Path) -> None:
    confpath = a_confpath(tmp_path)
    with pytest.raises(ConfigError, match="Section gone not found"):
        read_section("gone", {}, confpath)
    with pytest.raises(ConfigError, match="is for driver 'dummy-ups'"):
        read_section("other", {}, confpath)


def test_driver_variables_and_hand_set_values(tmp_path: Path) -> None:
    section = read_section("solar", {"nolock": "enabled"}, a_confpath(tmp_path))
    static = static_variables(section)
    assert static["driver.name"] == "nutbridge"
    assert static["driver.parameter.port"] == "tcp://192.0.2.7:502"
    assert static["driver.parameter.pollinterval"] == "5"
    assert static["driver.parameter.override.battery.charge.low"] == "30"
    assert static["driver.flag.nolock"] == "enabled"
    assert "driver.parameter.driver" not in static and "driver.parameter.desc" not in static
    assert hand_set(section.entries) == {"battery.charge.low": "30"}


def test_port_is_the_source_and_the_config_file_the_rest(tmp_path: Path) -> None:
    toml = tmp_path / "solar.toml"
    toml.write_text('[monitor]\nnocomms_grace = 20\n[nut]\nport_file = "/nowhere/solar.dev"\n')
    section = Section(ups="solar", entries={"port": "tcp://192.0.2.7:502", "config": str(toml)}, globals={})
    config, side = driver_config(section, Paths.of("solar", {"NUT_STATEPATH": str(tmp_path)}), interval=3)
    assert isinstance(config.source, TracerConfig)
    assert config.nut.mode == "driver"
    assert (config.monitor.nocomms_grace, config.monitor.poll_interval) == (20, 3)
    assert side.socket == tmp_path / "nutbridge-solar"
    simulated, _ = driver_config(Section(ups="solar", entries={"port": "simulate"}, globals={}), Paths.of("solar"))
    assert isinstance(simulated.source, SimulatorConfig)
    assert NutConfig().mode == "portfile"


def test_a_bad_port_names_itself(tmp_path: Path) -> None:
    section = Section(ups="solar", entries={"port": "gopher://x"}, globals={})
    with pytest.raises(ConfigError, match="gopher"):
        driver_config(section, Paths.of("solar", {"NUT_STATEPATH": str(tmp_path)}))


# -- started and stopped by the machine's upsdrvctl


def nut_ready() -> str | None:
    """Why upsdrvctl cannot start the driver here, or None."""
    if not UPSDRVCTL.exists():
        return "upsdrvctl not installed"
    if os.geteuid() != 0:
        return "needs root (upsdrvctl -u root)"
    return None


class Private:
    """A private NUT configuration whose driverpath holds a ``nutbridge`` link to this venv's nutbridge-driver."""

    def __init__(self, root: Path, port: str = "simulate") -> None:
        self.etc, self.state, self.drivers = root / "etc", root / "state", root / "drivers"
        for folder in (self.etc, self.state, self.drivers):
            folder.mkdir(mode=0o755)
        (self.drivers / "nutbridge").symlink_to(DRIVER)
        (self.etc / "ups.conf").write_text(
            f"driverpath = {self.drivers}\nmaxretry = 1\n[solar]\n  driver = nutbridge\n  port = {port}\n"
            "  pollinterval = 1\n  override.battery.charge.low = 30\n"
        )
        # NUT_IGNORE_CHECKPROCNAME as setup's drop-in gives: NUT 2.8.3+'s upsdrvctl checks the program's name
        self.env = {**os.environ, "NUT_CONFPATH": str(self.etc), "NUT_STATEPATH": str(self.state),
                    "NUT_ALTPIDPATH": str(self.state), "NUT_IGNORE_CHECKPROCNAME": "true"}  # fmt: skip
        self.pidfile, self.socket = self.state / "nutbridge-solar.pid", self.state / "nutbridge-solar"

    def upsdrvctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(UPSDRVCTL), "-u", "root", *args], env=self.env, capture_output=True, text=True,
                              timeout=START_TIMEOUT, check=False)  # fmt: skip

    def driver(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(DRIVER), *args], env=self.env, capture_output=True, text=True,
                              timeout=START_TIMEOUT, check=False)  # fmt: skip

    def ask(self, line: str) -> str:
        """One line to the driver socket, its first answer line."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(STOP_TIMEOUT)
            s.connect(str(self.socket))
            s.sendall(line.encode() + b"\n")
            return s.makefile().readline().strip()

    def gone(self, pid: int) -> None:
        wait_for(lambda: pid_alive(pid), lambda alive: not alive, timeout=STOP_TIMEOUT, what="the driver to exit")


@pytest.fixture
def nut(tmp_path: Path) -> Iterator[Private]:
    why = nut_ready()
    if why:
        pytest.skip(why)
    private = Private(tmp_path)
    yield private
    pid = read_pid(private.pidfile)
    if pid is not None and pid_alive(pid):
        kill_pid(pid)


def test_upsdrvctl_starts_it_in_the_background_and_stops_it(nut: Private) -> None:
    started = nut.upsdrvctl("start", "solar")
    assert started.returncode == 0, started.stderr
    pid = read_pid(nut.pidfile)  # upsdrvctl returned: the driver is in the background, ready
    assert pid is not None and pid_alive(pid)
    assert nut.socket.is_socket()
    assert nut.ask("PING") == "PONG"
    stopped = nut.upsdrvctl("stop", "solar")
    assert stopped.returncode == 0, stopped.stderr
    nut.gone(pid)
    assert not nut.pidfile.exists()
    assert not nut.socket.exists()


def test_c_exit_stops_the_running_driver(nut: Private) -> None:
    assert nut.upsdrvctl("start", "solar").returncode == 0
    pid = read_pid(nut.pidfile)
    assert pid is not None
    told = nut.driver("-a", "solar", "-c", "exit")
    assert told.returncode == 0, told.stderr
    nut.gone(pid)
    assert not nut.pidfile.exists()
    assert nut.driver("-a", "solar", "-c", "exit").returncode == 1  # none left to tell


def test_k_is_refused_with_nut_failure(nut: Private) -> None:
    done = nut.driver("-a", "solar", "-k")
    assert done.returncode == 1
    assert "not supported" in done.stderr


def test_a_bad_port_fails_to_start_with_a_clear_message(tmp_path: Path) -> None:
    why = nut_ready()
    if why:
        pytest.skip(why)
    nut = Private(tmp_path, port="gopher://192.0.2.7")
    started = nut.upsdrvctl("start", "solar")
    assert started.returncode != 0
    direct = nut.driver("-a", "solar", "-u", "root")
    assert direct.returncode == 1
    assert "gopher" in direct.stderr
    assert not nut.pidfile.exists()
