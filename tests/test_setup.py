"""``nutbridge setup``, run as a user would, in private NUT folders (NUT_CONFPATH, NUT_STATEPATH, NUTBRIDGE_RUNPATH,
--systemd-dir)
with a systemctl stub that records its arguments: what it writes, with which mode and owner, and what it never
touches."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from nutbridge.config import load
from nutbridge.devices.modbus import parse_modbus_url
from nutbridge.devices.tracer.config import TracerConfig
from nutbridge.nut.upsconf import nut_runpath, nut_statepath, parse_sections
from nutbridge.setup_texts import DROP_IN, SAMPLE_CONFIG, SAMPLE_PORT_FILE, UNIT, data_text, ups_section
from nutbridge.system import nut_user
from tests.conftest import need, read_only

REPO = Path(__file__).parent.parent
URL = "rtu:///dev/ttyUSB0?baudrate=115200"
# Debian's ups.conf, shortened: comments, a global setting, another UPS; no newline at the end
UPS_CONF = b"# Network UPS Tools: example ups.conf\r\n#\nmaxretry = 3\n\n[grid]\n\tdriver = usbhid-ups\n\tport = auto"


@dataclass
class Install:
    """A private NUT layout: etc/ (NUT_CONFPATH), state/ (NUT_STATEPATH), run/ (NUTBRIDGE_RUNPATH, NUT's
    runtime folder), systemd/ and a systemctl stub's log."""

    root: Path
    etc: Path
    state: Path
    run: Path
    systemd: Path
    calls: Path

    @property
    def config(self) -> Path:
        return self.etc / "nutbridge-solar.toml"

    @property
    def port_file(self) -> Path:
        """Where a new install's port file is: on tmpfs, made from the seed by nutbridge at each start."""
        return self.run / "solar.dev"

    @property
    def seed(self) -> Path:
        return self.state / "solar.dev"

    @property
    def ups_conf(self) -> Path:
        return self.etc / "ups.conf"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "NUT_CONFPATH": str(self.etc),
            "NUT_STATEPATH": str(self.state),
            "NUTBRIDGE_RUNPATH": str(self.run),
            "NUTBRIDGE_SYSTEMCTL": str(self.root / "systemctl"),
        }

    def setup(self, *args: str, stdin: str | None = None, ups: str = "solar") -> subprocess.CompletedProcess[str]:
        """``python -m nutbridge setup UPS --source URL --systemd-dir … ARGS``; stdin answers the prompts."""
        argv = [sys.executable, "-m", "nutbridge", "setup", ups, "--systemd-dir", str(self.systemd), *args]
        if not any(a.startswith("--source") for a in args):
            argv += ["--source", URL]
        return subprocess.run(
            argv,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=60,
            check=False,
        )

    def systemctl_calls(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []


@pytest.fixture
def nut(tmp_path: Path) -> Install:
    """etc/, state/ and run/ as Debian's nut-server leaves them (root:nut 0755, 0770, 0770; ups.conf root:nut
    0640)."""
    etc, state, run = tmp_path / "etc", tmp_path / "state", tmp_path / "run"
    for folder in (etc, state, run):
        folder.mkdir()
    (etc / "ups.conf").write_bytes(UPS_CONF)
    (etc / "ups.conf").chmod(0o640)
    state.chmod(0o770)
    run.chmod(0o770)
    user = nut_user()
    if user is not None and os.geteuid() == 0:
        for path in (etc, state, run, etc / "ups.conf"):
            os.chown(path, 0, user.pw_gid)
    calls = tmp_path / "systemctl.log"
    stub = tmp_path / "systemctl"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    stub.chmod(0o755)
    return Install(root=tmp_path, etc=etc, state=state, run=run, systemd=tmp_path / "systemd", calls=calls)


def snapshot(folder: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every file and folder under ``folder``: mode, owner, group and content (a link's target)."""
    found = {}
    for path in sorted([folder, *folder.rglob("*")]):
        st = path.lstat()
        content = os.readlink(path).encode() if path.is_symlink() else path.read_bytes() if path.is_file() else b""
        found[str(path.relative_to(folder))] = (st.st_mode, st.st_uid, st.st_gid, content)
    return found


def need_nut_user() -> int:
    """NUT's user's uid; the owner checks need it and root (CI has both)."""
    user = nut_user()
    need(user is not None and os.geteuid() == 0, "root and NUT's user nut (apt-get install nut-server)")
    assert user is not None
    return user.pw_uid


def shipped_unit_as_installed(installed: str) -> str:
    """The installed unit with the nutbridge it runs put back to the shipped path (setup names this venv's
    nutbridge when /usr/local/bin/nutbridge is missing)."""
    return installed.replace(str(Path(sys.executable).parent / "nutbridge"), "/usr/local/bin/nutbridge")


def test_a_new_install_writes_each_file_as_nut_reads_it(nut: Install) -> None:
    nut_uid = need_nut_user()
    done = nut.setup("--yes")
    assert done.returncode == 0, done.stdout + done.stderr

    config = nut.config.stat()
    assert stat.S_IMODE(config.st_mode) == 0o600 and config.st_uid == nut_uid
    loaded = load(nut.config)
    assert isinstance(loaded.source, TracerConfig) and loaded.source.url == parse_modbus_url(URL, "test")
    assert loaded.nut.port_file == nut.port_file and loaded.nut.seed_file == nut.seed

    seed = nut.seed.stat()
    assert stat.S_IMODE(seed.st_mode) == 0o644 and seed.st_uid == nut_uid
    assert nut.seed.read_text() == data_text(SAMPLE_PORT_FILE)
    assert not nut.port_file.exists()  # nutbridge makes it from the seed at each start, as after a reboot

    text = nut.ups_conf.read_bytes()
    assert text.startswith(UPS_CONF + b"\n\n[solar]\n"), text  # the old bytes, then the section
    section = parse_sections(text.decode())["solar"]
    assert section["driver"] == "dummy-ups" and section["mode"] == "dummy-once"
    assert section["port"] == str(nut.port_file)
    ups_conf = nut.ups_conf.stat()
    assert stat.S_IMODE(ups_conf.st_mode) == 0o640 and ups_conf.st_gid == os.stat(nut.etc).st_gid

    assert shipped_unit_as_installed((nut.systemd / UNIT).read_text()) == data_text(UNIT)
    assert (nut.systemd / "nut-driver@solar.service.d" / "nutbridge.conf").read_text() == data_text(DROP_IN)
    calls = nut.systemctl_calls()
    assert calls[:3] == ["daemon-reload", "enable nut-driver@solar", "enable nutbridge@solar"], calls
    assert "restart nutbridge@solar nut-driver@solar" in calls
    assert "nutbridge doctor solar" in done.stdout and "upsc solar@localhost" in done.stdout


def test_a_second_run_appends_nothing_and_changes_no_file(nut: Install) -> None:
    assert nut.setup("--yes").returncode == 0
    before = snapshot(nut.root / "etc"), snapshot(nut.state), snapshot(nut.systemd)
    again = nut.setup("--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (snapshot(nut.root / "etc"), snapshot(nut.state), snapshot(nut.systemd)) == before
    assert nut.ups_conf.read_bytes().count(b"[solar]") == 1
    assert f"{nut.ups_conf} has [solar] already" in again.stdout
    assert "setup never overwrites a configuration; `nutbridge doctor solar` checks it" in again.stdout


def test_dry_run_prints_every_step_and_changes_nothing(nut: Install) -> None:
    before = snapshot(nut.root)
    done = nut.setup("--dry-run")
    assert done.returncode == 0, done.stderr
    assert snapshot(nut.root) == before  # no file, no mode, no owner changed; the stub never ran
    for step in (
        f"would: Write {nut.config} (0600",
        f"would: Create the seed {nut.seed} (0644",
        f"from which nutbridge makes the port file {nut.port_file}",
        f"would: Append [solar] to {nut.ups_conf}",
        f"port = {nut.port_file}",  # the section it would append
        f"would: Install the unit {nut.systemd / UNIT}",
        "would: Run `systemctl enable nut-driver@solar`",
        "would: Run `systemctl enable nutbridge@solar`",
    ):
        assert step in done.stdout, done.stdout


def test_answering_n_skips_that_step_only(nut: Install) -> None:
    done = nut.setup(stdin="y\n\nn\n" + "y\n" * 10)  # yes to the config, Enter (yes) to the seed, no to ups.conf
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Write {nut.config} (0600" in done.stdout and "? [Y/n]" in done.stdout
    assert nut.config.exists() and nut.seed.exists()
    assert nut.ups_conf.read_bytes() == UPS_CONF
    assert f"skipped  Append [solar] to {nut.ups_conf}" in done.stdout
    assert "enable nutbridge@solar" in nut.systemctl_calls()


def test_no_answer_on_stdin_changes_nothing(nut: Install) -> None:
    before = snapshot(nut.root)
    done = nut.setup()
    assert done.returncode == 1
    assert "--yes" in done.stderr and "Traceback" not in done.stderr
    assert snapshot(nut.root) == before


@pytest.mark.parametrize(
    ("args", "status", "said"),
    [
        (["--source", "http://192.0.2.1/"], 78, "--source"),
        (["--source", "rtu:///dev/ttyUSB0?baudrate=9"], 78, "baudrate"),
        (["--source", URL, "--systemctl", "'unbalanced"], 2, "--systemctl"),
    ],
)
def test_a_bad_url_is_refused_before_anything_is_written(nut: Install, args: list[str], status: int, said: str) -> None:
    before = snapshot(nut.root)
    done = nut.setup("--yes", *args)
    assert done.returncode == status, done.stdout + done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr
    assert snapshot(nut.root) == before


def test_usage_errors_exit_2(nut: Install) -> None:
    assert nut.setup("--yes", ups="../etc").returncode == 2
    missing = subprocess.run(
        [sys.executable, "-m", "nutbridge", "setup", "solar"],
        capture_output=True,
        text=True,
        env=nut.env(),
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2 and "--source" in missing.stderr


def test_a_section_that_differs_is_refused_and_named(nut: Install) -> None:
    nut.ups_conf.write_bytes(UPS_CONF + b"\n[solar]\n  driver = dummy-ups\n  port = other.dev\n  mode = dummy-loop\n")
    before = snapshot(nut.root)
    done = nut.setup("--yes")
    assert done.returncode == 1
    assert "has a section [solar] already" in done.stderr, done.stderr
    assert "port = other.dev" in done.stderr and "mode = dummy-loop" in done.stderr
    assert "Nothing was changed" in done.stderr and "Traceback" not in done.stderr
    assert snapshot(nut.root) == before


def test_a_matching_section_is_not_added_again(nut: Install) -> None:
    # a relative port is in NUT's configuration folder, as dummy-ups reads it
    own = UPS_CONF + b'\n[solar]\n  driver = dummy-ups\n  port = "../run/solar.dev"\n  mode = dummy-once\n'
    nut.ups_conf.write_bytes(own)
    done = nut.setup("--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert nut.ups_conf.read_bytes() == own
    assert "has [solar] already" in done.stdout


def test_an_existing_config_is_never_overwritten(nut: Install) -> None:
    mine = f'[source]\nurl = "tcp://192.0.2.5:502"\n[nut]\nport_file = "{nut.state}/mine.dev"\n'
    nut.config.write_text(mine)
    nut.config.chmod(0o600)
    done = nut.setup("--yes")
    assert nut.config.read_text() == mine
    assert "setup never overwrites a configuration" in done.stdout and "nutbridge doctor solar" in done.stdout
    assert done.returncode == 1  # --source asked for another device than the file reads
    assert "reads another source than --source" in done.stdout
    assert (nut.state / "mine.dev").exists()  # the other steps follow the file's port file
    assert f"port = {nut.state}/mine.dev" in nut.ups_conf.read_text()
    assert nut.setup("--yes", "--source", "tcp://192.0.2.5:502").returncode == 0


def test_an_existing_port_file_is_kept_as_it_is_and_becomes_the_seed(nut: Install) -> None:
    nut.seed.write_bytes(b"# mine\r\nbattery.charge.low: 40\n")  # where the port file of an older install was
    nut.seed.chmod(0o640)
    before = snapshot(nut.state)
    done = nut.setup("--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot(nut.state) == before
    assert f"{nut.seed} exists: kept as it is, as the seed of {nut.port_file}" in done.stdout
    assert load(nut.config).nut.seed_file == nut.seed


def test_port_on_disk_keeps_the_port_file_in_the_state_folder(nut: Install) -> None:
    done = nut.setup("--yes", "--port-on-disk")
    assert done.returncode == 0, done.stdout + done.stderr
    loaded = load(nut.config)
    assert loaded.nut.port_file == nut.seed and loaded.nut.seed_file is None
    assert nut.seed.read_text() == data_text(SAMPLE_PORT_FILE)
    assert parse_sections(nut.ups_conf.read_text())["solar"]["port"] == str(nut.seed)
    assert list(nut.run.iterdir()) == []


def test_without_nuts_runtime_folder_the_port_file_is_on_the_disk_and_said_so(nut: Install) -> None:
    nut.run.rmdir()
    done = nut.setup("--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert load(nut.config).nut.port_file == nut.seed and load(nut.config).nut.seed_file is None
    said = f"note: {nut.run} (NUT's runtime folder, a tmpfs) does not exist: the port file is on the disk"
    assert said in done.stdout


def test_another_ups_name_is_used_everywhere(nut: Install) -> None:
    done = nut.setup("--yes", ups="pv-1")
    assert done.returncode == 0, done.stdout + done.stderr
    config = (nut.etc / "nutbridge-pv-1.toml").read_text()
    assert "nutbridge@pv-1" in config and "@solar" not in config and "nutbridge-solar" not in config
    assert load(nut.etc / "nutbridge-pv-1.toml").nut.port_file == nut.run / "pv-1.dev"
    assert load(nut.etc / "nutbridge-pv-1.toml").nut.seed_file == nut.state / "pv-1.dev"
    assert parse_sections(nut.ups_conf.read_text())["pv-1"]["port"] == str(nut.run / "pv-1.dev")
    assert (nut.systemd / "nut-driver@pv-1.service.d" / "nutbridge.conf").exists()
    assert "enable nutbridge@pv-1" in nut.systemctl_calls()


def test_missing_nut_folders_are_a_clear_error(nut: Install) -> None:
    nut.state.rmdir()
    done = nut.setup("--yes")
    assert done.returncode == 1
    assert f"{nut.state} does not exist" in done.stderr and "apt install nut-server" in done.stderr
    assert "Traceback" not in done.stderr and not nut.config.exists()


def test_a_folder_that_cannot_be_written_fails_the_step_clearly(nut: Install) -> None:
    with read_only(nut.etc):
        done = nut.setup("--yes")
    assert done.returncode == 1
    assert f"FAILED: Write {nut.config}" in done.stderr and "not writable" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert f"not done Append [solar] to {nut.ups_conf}" in done.stdout
    assert not nut.seed.exists() and nut.systemctl_calls() == []  # it stops at the first failure


def test_a_failing_systemctl_fails_its_step(nut: Install) -> None:
    (nut.root / "systemctl").write_text('#!/bin/sh\necho "Failed to enable unit: Unit file nope" >&2\nexit 1\n')
    done = nut.setup("--yes")
    assert done.returncode == 1
    assert "`systemctl daemon-reload` failed (exit status 1): Failed to enable unit" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_no_systemd_installs_no_unit(nut: Install) -> None:
    done = nut.setup("--yes", "--no-systemd")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not nut.systemd.exists() and nut.systemctl_calls() == []
    assert "--no-systemd: no systemd unit installed" in done.stdout
    assert nut.config.exists() and nut.seed.exists() and b"[solar]" in nut.ups_conf.read_bytes()


def test_the_repository_files_are_the_ones_the_package_ships() -> None:
    for repo_path, name in (
        ("systemd/nutbridge@.service", UNIT),
        ("systemd/nut-driver-restart.conf", DROP_IN),
        ("etc/nutbridge-solar.toml", SAMPLE_CONFIG),
        ("etc/solar.dev.sample", SAMPLE_PORT_FILE),
    ):
        assert (REPO / repo_path).read_text() == data_text(name), repo_path


def test_the_ups_conf_sample_names_the_port_file_not_its_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A manual install by the samples and the README's steps has dummy-ups read the port file nutbridge
    rewrites (on tmpfs), not its seed, which nutbridge only reads at start and copies hand edits back to."""
    monkeypatch.delenv("NUT_STATEPATH", raising=False)
    monkeypatch.delenv("NUTBRIDGE_RUNPATH", raising=False)
    port_file, seed = nut_runpath() / "solar.dev", nut_statepath() / "solar.dev"  # what setup writes by default
    readme = (REPO / "README.md").read_text()
    step = re.search(r'set `port_file = "([^"]+)"` with `seed_file = "([^"]+)"`', readme)
    assert step is not None, "README's step 3 names the port file and its seed"
    assert (step[1], step[2]) == (str(port_file), str(seed))
    sample_config = (REPO / "etc" / "nutbridge-solar.toml").read_text()
    assert f'# seed_file = "{seed}"' in sample_config and f'"{port_file}"' in sample_config
    sample = parse_sections((REPO / "etc" / "ups.conf.sample").read_text())["solar"]
    assert sample["port"] == str(port_file) != str(seed)
    assert parse_sections(ups_section("solar", port_file))["solar"] == sample


# ------------------------------------------------------------------ --driver: nutbridge as NUT's driver


def driver_layout(nut: Install) -> Path:
    """NUT's driver folder inside the sandbox, named by ups.conf's driverpath as upsdrvctl reads it."""
    drivers = nut.root / "drivers"
    drivers.mkdir()
    nut.ups_conf.write_bytes(f"driverpath = {drivers}\n".encode() + UPS_CONF)
    return drivers


def test_driver_mode_writes_the_section_the_link_and_starts_only_nuts_driver(nut: Install) -> None:
    drivers = driver_layout(nut)
    before = nut.ups_conf.read_bytes()
    done = nut.setup("--driver", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr

    # the section nutbridge-driver reads: the URL as port, the configuration named; the rest byte for byte
    text = nut.ups_conf.read_text()
    assert nut.ups_conf.read_bytes().startswith(before)
    assert parse_sections(text)["solar"] == {
        "driver": "nutbridge",
        "port": URL,
        "config": str(nut.config),
        "desc": "EPEver Tracer via nutbridge",
    }
    # upsdrvctl finds `nutbridge` in its driver folder, and it is this install's nutbridge-driver
    link = drivers / "nutbridge"
    assert link.is_symlink() and os.path.realpath(link) == os.path.realpath(
        Path(sys.executable).parent / "nutbridge-driver"
    )
    # the configuration is driver mode's, with the source; no port file, no seed, no unit of ours
    config = load(nut.config)
    assert config.nut.mode == "driver" and config.nut.port_file is None
    assert isinstance(config.source, TracerConfig) and config.source.url == parse_modbus_url(URL, "url")
    assert stat.S_IMODE(nut.config.stat().st_mode) == 0o600
    assert list(nut.state.iterdir()) == [] and list(nut.run.iterdir()) == []
    # one drop-in for NUT's own unit: from NUT 2.8.3 upsdrvctl stops a driver only if its process runs a program
    # named after it, and nutbridge-driver's runs python3 (nut.conf(5) names this variable for such programs)
    assert [p.relative_to(nut.systemd) for p in nut.systemd.rglob("*") if p.is_file()] == [
        Path("nut-driver@solar.service.d/nutbridge-driver.conf")
    ]
    drop_in = (nut.systemd / "nut-driver@solar.service.d/nutbridge-driver.conf").read_text()
    assert "[Service]\nEnvironment=NUT_IGNORE_CHECKPROCNAME=true\n" in drop_in
    assert nut.systemctl_calls() == ["daemon-reload", "enable nut-driver@solar", "restart nut-driver@solar",
                                     "try-reload-or-restart nut-server.service"]  # fmt: skip
    # a second run finds everything in place and changes no file
    files = snapshot(nut.root / "etc"), snapshot(drivers), snapshot(nut.systemd)
    again = nut.setup("--driver", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (snapshot(nut.root / "etc"), snapshot(drivers), snapshot(nut.systemd)) == files
    assert "already there" in again.stdout and "with driver = nutbridge and this source" in again.stdout


def test_driver_mode_never_replaces_another_nutbridge_in_the_driver_folder(nut: Install) -> None:
    drivers = driver_layout(nut)
    (drivers / "nutbridge").symlink_to("/opt/old/nutbridge-driver")
    done = nut.setup("--driver", "--yes")
    assert done.returncode == 1, done.stdout + done.stderr
    assert os.readlink(drivers / "nutbridge") == "/opt/old/nutbridge-driver"
    assert "setup never replaces it" in done.stdout and "links to /opt/old/nutbridge-driver" in done.stdout


def test_driver_mode_refuses_a_port_file_section_and_changes_nothing(nut: Install) -> None:
    drivers = driver_layout(nut)
    assert nut.setup("--yes", "--no-systemd").returncode == 0  # the port-file mode first
    nut.config.unlink()
    before = snapshot(nut.root / "etc"), snapshot(drivers)
    done = nut.setup("--driver", "--yes", "--no-systemd")
    assert done.returncode == 1
    assert "driver = dummy-ups (setup wants nutbridge)" in done.stderr and "Nothing was changed" in done.stderr
    assert (snapshot(nut.root / "etc"), snapshot(drivers)) == before


def test_driver_mode_dry_run_and_usage(nut: Install) -> None:
    driver_layout(nut)
    before = snapshot(nut.root)
    done = nut.setup("--driver", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "would: Link " in done.stdout and "\tdriver = nutbridge" in done.stdout
    assert "nutbridge@" not in done.stdout
    assert snapshot(nut.root) == before
    usage = nut.setup("--driver", "--port-on-disk")
    assert usage.returncode == 2 and "--driver has none" in usage.stderr


def test_driver_mode_without_nuts_driver_folder_is_a_clear_error(nut: Install) -> None:
    nut.ups_conf.write_bytes(f"driverpath = {nut.root / 'nowhere'}\n".encode() + UPS_CONF)
    before = snapshot(nut.root)
    done = nut.setup("--driver", "--yes")
    assert done.returncode == 1
    assert "NUT's driver folder" in done.stderr and "Nothing was changed" in done.stderr
    assert snapshot(nut.root) == before
