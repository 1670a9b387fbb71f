"""``nutbridge doctor``: each check on its own, then against a real dummy-ups + upsd built by ``nutbridge setup``,
broken one thing at a time.

The install lives in a private folder (NUT_CONFPATH, NUT_STATEPATH, NUT_ALTPIDPATH); the filesystem check reads
a mounts file the test writes (NUTBRIDGE_MOUNTS), systemctl and upsc are stubs where a test says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import os
import pwd
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from nutbridge.doctor import gather, parser
from nutbridge.doctor.config_checks import check_config, check_config_private
from nutbridge.doctor.context import FAIL, OK, WARN, Context, Result
from nutbridge.doctor.host import filesystem_of
from nutbridge.doctor.load_checks import check_load_terminal
from nutbridge.doctor.nut_checks import (
    check_daemon,
    check_driver,
    check_nut_quirks,
    check_nut_version,
    check_ups_conf,
    check_upsc,
    check_upsmon,
)
from nutbridge.doctor.port_file_checks import check_port_file, check_port_file_disk, check_port_file_owner
from nutbridge.doctor.runner import CHECKS, check_name
from nutbridge.nut.upsc import UpscAnswer
from nutbridge.nut.version import NutVersion
from nutbridge.system import nut_user
from tests.conftest import need
from tests.helpers import free_port
from tests.nut_stack import NutStack, Simulator, kill_pid, read_pid, wait_for, why_not_runnable

UPS = "solar"
GOOD_MOUNTS = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
MONITOR = "MONITOR solar@127.0.0.1:3493 1 monuser secret primary\n"


def nutbridge(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m nutbridge ARGS`` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "nutbridge", *args], capture_output=True, text=True, env=dict(env),
                          timeout=60, check=False, stdin=subprocess.DEVNULL)  # fmt: skip


def write_script(path: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


@dataclass
class Layout:
    """What ``nutbridge setup --no-systemd`` made in a private folder, plus upsmon.conf and a mounts file."""

    root: Path
    etc: Path
    state: Path
    mounts: Path

    @property
    def config(self) -> Path:
        return self.etc / f"nutbridge-{UPS}.toml"

    @property
    def port_file(self) -> Path:
        return self.state / f"{UPS}.dev"

    def context(self, *args: str) -> Context:
        """What the doctor would look at, from the environment the ``layout`` fixture set."""
        return gather(parser().parse_args([UPS, "--no-systemd", *args]))


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Layout:
    etc, state = tmp_path / "etc", tmp_path / "state"
    etc.mkdir()
    state.mkdir()
    state.chmod(0o770)
    user = nut_user()
    if user is not None and os.geteuid() == 0:
        os.chown(state, 0, user.pw_gid)  # as Debian's /var/lib/nut
    env = {"NUT_CONFPATH": str(etc), "NUT_STATEPATH": str(state), "NUT_ALTPIDPATH": str(state),
           "NUTBRIDGE_RUNPATH": str(tmp_path / "run")}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # the port file on the disk: these checks look at one file; the seeded layout is the real install's below
    done = nutbridge("setup", UPS, "--source", "tcp://127.0.0.1:1", "--yes", "--no-systemd", "--port-on-disk",
                     env={**os.environ, **env})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (etc / "upsmon.conf").write_text(MONITOR)
    mounts = tmp_path / "mountinfo"
    mounts.write_text(GOOD_MOUNTS)
    monkeypatch.setenv("NUTBRIDGE_MOUNTS", str(mounts))
    monkeypatch.delenv("NUTBRIDGE_SYSTEMCTL", raising=False)
    monkeypatch.delenv("NUTBRIDGE_UPSC", raising=False)
    return Layout(root=tmp_path, etc=etc, state=state, mounts=mounts)


def need_nut_user() -> pwd.struct_passwd:
    user = nut_user()
    need(user is not None and os.geteuid() == 0, "root and NUT's user nut (apt-get install nut-server)")
    assert user is not None
    return user


def test_every_check_is_named_after_its_function(layout: Layout) -> None:
    ctx = layout.context()
    # a charge controller's answer: its load terminal's settings too (a device without one skips that check)
    ctx.upsc_answer = UpscAnswer({"ups.status": "OL", "experimental.battery.voltage.disconnect": "11.10",
                                  "experimental.output.control": "manual"}, None)  # fmt: skip
    ctx.systemctl = ["true"]  # prints nothing: "exit status 0", never "active"
    for check in CHECKS:
        result = check(ctx)
        assert isinstance(result, Result) and result.name == check_name(check)
        assert result.level in (OK, WARN, FAIL) and result.message


# ------------------------------------------------------------------ 1. the configuration


def test_config_valid_and_invalid(layout: Layout) -> None:
    result = check_config(layout.context())
    assert result.level == OK and str(layout.config) in result.message
    text = layout.config.read_text()
    layout.config.write_text(text.replace("poll_interval = 10", "poll_interval = 0"))
    result = check_config(layout.context())
    assert result.level == FAIL and "monitor.poll_interval = 0 is not allowed" in result.message
    assert result.fix is not None and f"nutbridge -c {layout.config} -s" in result.fix
    layout.config.unlink()
    result = check_config(layout.context())
    assert result.level == FAIL and "does not exist" in result.message
    assert result.fix == f"sudo nutbridge setup {UPS} --source URL"


def test_config_must_be_private_and_readable_by_nut(layout: Layout) -> None:
    assert check_config_private(layout.context()).level == OK
    layout.config.chmod(0o644)
    result = check_config_private(layout.context())
    assert result.level == FAIL and "open to group or others" in result.message and "0644" in result.message
    assert result.fix == f"sudo chmod 600 {layout.config}"
    need_nut_user()
    layout.config.chmod(0o600)
    os.chown(layout.config, 0, 0)
    result = check_config_private(layout.context())
    assert result.level == FAIL and "nut cannot read" in result.message
    assert result.fix == f"sudo chown nut:nut {layout.config}"


# ------------------------------------------------------------------ 2. the port file


def test_port_file_present_missing_or_in_nocomms(layout: Layout) -> None:
    assert check_port_file(layout.context()).level == OK
    nocomms = layout.port_file.with_name(f"{UPS}.dev-nocomms")
    layout.port_file.rename(nocomms)
    result = check_port_file(layout.context())
    assert result.level == FAIL and "comms with the device are lost" in result.message
    assert result.fix is not None and f"journalctl -u nutbridge@{UPS}" in result.fix
    nocomms.unlink()
    result = check_port_file(layout.context())
    assert result.level == FAIL and "does not exist" in result.message
    assert result.fix is not None and result.fix.endswith(f"-m 0644 /dev/null {layout.port_file}")
    assert check_port_file_owner(layout.context()).level == WARN  # nothing to look at


def test_port_file_owned_by_another_user_or_in_a_folder_nut_cannot_write(layout: Layout) -> None:
    need_nut_user()
    assert check_port_file_owner(layout.context()).level == OK
    os.chown(layout.port_file, 65534, 65534)  # nobody, mode 0644
    result = check_port_file_owner(layout.context())
    assert result.level == FAIL and "nut cannot write" in result.message and "owner nobody" in result.message
    assert result.fix == f"sudo chown nut:nut {layout.port_file}"
    layout.port_file.chmod(0o666)
    assert check_port_file_owner(layout.context()).level == OK  # not nut's, but nut may write it
    os.chown(layout.state, 0, 0)  # root:root 0770: nut cannot rename a new file over it
    result = check_port_file_owner(layout.context())
    assert result.level == FAIL and f"nut cannot create files in {layout.state}" in result.message
    assert result.fix == f"sudo chgrp nut {layout.state} && sudo chmod g+rwx {layout.state}"


def test_port_file_on_tmpfs(layout: Layout) -> None:
    assert check_port_file_disk(layout.context()).level == OK
    real = os.path.realpath(layout.state)
    layout.mounts.write_text(GOOD_MOUNTS + f"40 22 0:30 / {real} rw,nosuid - tmpfs tmpfs rw,size=10240k\n")
    result = check_port_file_disk(layout.context())
    assert result.level == FAIL and f"is on tmpfs ({real})" in result.message
    assert result.fix is not None and f"/var/lib/nut/{UPS}.dev" in result.fix and "nut.port_file" in result.fix
    assert f"set nut.seed_file in {layout.config}" in result.fix
    # /proc/mounts' format too, and the later of two mounts at one point covers the earlier one
    layout.mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\ntmpfs {real} tmpfs rw 0 0\n/dev/sdb1 {real} ext4 rw 0 0\n")
    assert filesystem_of(layout.port_file, layout.mounts) == (real, "ext4")
    spaced = layout.root / "with space"
    spaced.mkdir()
    escaped = os.path.realpath(spaced).replace(" ", "\\040")  # as the kernel writes a space
    layout.mounts.write_text(GOOD_MOUNTS + f"41 22 0:31 / {escaped} rw - ramfs x rw\n")
    assert filesystem_of(spaced / "x.dev", layout.mounts) == (os.path.realpath(spaced), "ramfs")


def test_port_file_on_tmpfs_with_a_seed_on_the_disk(layout: Layout) -> None:
    run = layout.root / "run"
    run.mkdir()
    real = os.path.realpath(run)
    layout.mounts.write_text(GOOD_MOUNTS + f"40 22 0:30 / {real} rw,nosuid - tmpfs tmpfs rw,size=10240k\n")
    seed = layout.state / f"{UPS}.dev"  # the old port file, on the disk, becomes the seed
    text = layout.config.read_text().replace(f'"{layout.port_file}"', f'"{run / "solar.dev"}"\nseed_file = "{seed}"')
    layout.config.write_text(text)
    (run / "solar.dev").write_text(seed.read_text())
    result = check_port_file_disk(layout.context())
    assert result.level == OK and f"seeded from {os.path.realpath(seed)} on ext4 (/)" in result.message, result
    assert f"is on tmpfs ({real})" in result.message
    seed.unlink()
    result = check_port_file_disk(layout.context())
    assert result.level == FAIL and "does not exist" in result.message
    assert result.fix == f"sudo install -o nut -g nut -m 0644 {run / 'solar.dev'} {os.path.realpath(seed)}"
    layout.config.write_text(text.replace(f'seed_file = "{seed}"', f'seed_file = "{run / "seed.dev"}"'))
    (run / "seed.dev").write_text("")
    result = check_port_file_disk(layout.context())
    assert result.level == FAIL and "is on tmpfs" in result.message and "too" in result.message
    assert result.fix is not None and "nut.seed_file" in result.fix
    (run / "solar.dev").unlink()  # after a reboot, before nutbridge starts
    result = check_port_file(layout.context())
    assert result.level == FAIL and result.fix == f"restart `nutbridge {UPS}`: it creates the port file from its seed "\
        f"{run / 'seed.dev'}"  # fmt: skip


def test_port_file_where_the_unit_cannot_write(layout: Layout) -> None:
    ctx = layout.context()
    ctx.port_file = Path("/etc/nut/solar.dev")
    assert check_port_file_disk(ctx).level == WARN  # without systemd the unit does not matter much
    ctx.systemctl = ["true"]
    result = check_port_file_disk(ctx)
    assert result.level == FAIL and "ProtectSystem=full" in result.message


# ------------------------------------------------------------------ 3. ups.conf


def test_ups_conf_section(layout: Layout) -> None:
    ups_conf = layout.etc / "ups.conf"
    good = ups_conf.read_text()
    assert check_ups_conf(layout.context()).level == OK
    for text, expected in (
        ("maxretry = 3\n", f"has no [{UPS}] section"),
        (good.replace(str(layout.port_file), str(layout.state / "other.dev")), "but the port file is"),
        (good.replace("mode = dummy-once", "mode = dummy-loop"), "mode = dummy-loop, not dummy-once"),
        (good.replace("driver = dummy-ups", "driver = usbhid-ups"), "driver = usbhid-ups, not dummy-ups"),
    ):
        ups_conf.write_text(text)
        result = check_ups_conf(layout.context())
        assert result.level == FAIL and expected in result.message, result
        assert result.fix is not None and "dummy-once" in result.fix
    ups_conf.write_text(good.replace(str(layout.port_file), "../state/solar.dev"))  # relative to NUT_CONFPATH
    assert check_ups_conf(layout.context()).level == OK
    ups_conf.write_text(good.replace("\tmode = dummy-once\n", ""))
    assert check_ups_conf(layout.context()).level == WARN  # .dev files get dummy-once anyway


def test_the_fix_for_a_missing_section_appends_it(layout: Layout) -> None:
    ups_conf = layout.etc / "ups.conf"
    good = ups_conf.read_text()
    ups_conf.write_text("maxretry = 3\n")
    fix = check_ups_conf(layout.context()).fix
    assert fix is not None
    subprocess.run(fix.replace("sudo ", ""), shell=True, check=True, capture_output=True)
    assert check_ups_conf(layout.context()).level == OK
    assert ups_conf.read_text().startswith("maxretry = 3\n\n[solar]\n") and good.count("[solar]") == 1


# ------------------------------------------------------------------ 4. the driver and the daemon


def test_driver_and_daemon_under_systemd(layout: Layout) -> None:
    states = layout.root / "states"
    stub = write_script(layout.root / "systemctl", f'state=$(grep "^$2 " {states} | cut -d" " -f2)\necho "$state"')
    states.write_text(f"nut-driver@{UPS} active\nnutbridge@{UPS} failed\n")
    ctx = gather(parser().parse_args([UPS, "--systemctl", stub]))
    assert check_driver(ctx).level == OK
    result = check_daemon(ctx)
    assert result.level == FAIL and f"nutbridge@{UPS} is failed" in result.message
    assert result.fix is not None and f"systemctl enable --now nutbridge@{UPS}" in result.fix
    states.write_text(f"nut-driver@{UPS} inactive\nnutbridge@{UPS} active\n")
    result = check_driver(ctx)
    assert result.level == FAIL and result.fix is not None and f"systemctl restart nut-driver@{UPS}" in result.fix
    assert check_daemon(ctx).level == OK


def test_driver_without_systemd_by_its_pid_file(layout: Layout) -> None:
    result = check_driver(layout.context())
    assert result.level == FAIL and f"no dummy-ups-{UPS}.pid" in result.message
    assert result.fix == f"sudo upsdrvctl start {UPS}"
    (layout.state / f"dummy-ups-{UPS}.pid").write_text("999999999\n")  # above any pid_max: no such process
    assert "which does not run" in check_driver(layout.context()).message


# ------------------------------------------------------------------ 5. upsc and fresh values


def test_upsc_answers_and_how_fresh(layout: Layout) -> None:
    answer = layout.root / "answer"
    upsc = write_script(layout.root / "upsc", f"cat {answer}")
    answer.write_text("battery.charge: 80\nups.status: OL CHRG\n")
    ctx = layout.context("--upsc", upsc)
    result = check_upsc(ctx)
    assert result.level == OK and "ups.status OL CHRG" in result.message
    two_hours_ago = time.time() - 7200
    os.utime(layout.port_file, (two_hours_ago, two_hours_ago))
    result = check_upsc(layout.context("--upsc", upsc))
    assert result.level == FAIL and "stale" in result.message and "is nutbridge running?" in result.message
    five_minutes_ago = time.time() - 300  # a poll every 10 s: maybe nothing changed, maybe not running
    os.utime(layout.port_file, (five_minutes_ago, five_minutes_ago))
    assert check_upsc(layout.context("--upsc", upsc)).level == WARN
    answer.write_text("battery.charge: 80\n")
    result = check_upsc(layout.context("--upsc", upsc))
    assert result.level == FAIL and "no ups.status" in result.message


@pytest.mark.parametrize(
    ("error", "said", "fix"),
    [
        ("Error: Driver not connected", "Driver not connected", f"sudo upsdrvctl start {UPS}"),
        ("Error: Data stale", "stopped updating", f"sudo upsdrvctl start {UPS}"),
        ("Error: Unknown UPS", "has not read [solar]", "sudo systemctl reload nut-server"),
        ("Error: Connection failure: Connection refused", "upsd does not answer", "sudo systemctl start nut-server"),
    ],
)
def test_what_a_failing_upsc_means(layout: Layout, error: str, said: str, fix: str) -> None:
    upsc = write_script(
        layout.root / "upsc", f'echo "Init SSL without certificate database" >&2\necho "{error}" >&2\nexit 1'
    )
    result = check_upsc(layout.context("--upsc", upsc))
    assert result.level == FAIL and said in result.message and error in result.message
    assert result.fix is not None and result.fix.startswith(fix)


class Health(http.server.BaseHTTPRequestHandler):
    """/health as the daemon answers it in nocomms."""

    def do_GET(self) -> None:
        body = json.dumps({"status": "unhealthy", "reason": "comms lost: no answer"}).encode()
        self.send_response(503 if self.path == "/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_freshness_comes_from_the_api_when_there_is_one(layout: Layout) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with layout.config.open("a") as f:
            f.write(f'\n[datalog]\nfolder = "log"\n[api]\nlisten = "127.0.0.1:{port}"\n')
        upsc = write_script(layout.root / "upsc", 'echo "ups.status: OL"')
        result = check_upsc(layout.context("--upsc", upsc))
    finally:
        server.shutdown()
        server.server_close()
    assert result.level == FAIL and "nutbridge's API says stale: comms lost: no answer" in result.message


# ------------------------------------------------------------------ 6. upsmon


def test_upsmon_monitor_line(layout: Layout) -> None:
    upsmon = layout.etc / "upsmon.conf"
    assert check_upsmon(layout.context()).level == OK
    upsmon.write_text("# MONITOR solar@localhost 1 upsmon pass primary\nMONITOR grid@localhost 1 u p primary\n")
    result = check_upsmon(layout.context())
    assert result.level == FAIL and "no MONITOR line for solar" in result.message
    assert result.fix is not None and f"MONITOR {UPS}@localhost 1 USER PASSWORD primary" in result.fix
    upsmon.write_text('MONITOR solar@localhost 0 upsmon "pass word" secondary\n')
    assert check_upsmon(layout.context()).level == WARN  # power value 0: never shuts this host down
    assert "pass word" not in check_upsmon(layout.context()).message  # the password is not shown
    assert layout.context().upsd == "localhost"  # upsc asks where upsmon looks


# ------------------------------------------------------------------ 7. NUT versions


def version_context(layout: Layout, version: str | None, setting: str | None = None, grace: float = 10) -> Context:
    text = layout.config.read_text().replace("nocomms_grace = 10", f"nocomms_grace = {grace:g}")
    if setting:
        text = text.replace('# version = "2.8.1"', f'version = "{setting}"')
    layout.config.write_text(text)
    ctx = layout.context()
    ctx.nut_version = NutVersion(*map(int, version.split("."))) if version else None
    ctx.dummy_ups = Path("/lib/nut/dummy-ups") if version else None
    return ctx


def test_the_config_setting_must_agree_with_dummy_ups(layout: Layout) -> None:
    assert check_nut_version(version_context(layout, "2.8.1")).level == OK
    result = check_nut_version(version_context(layout, "2.8.5", setting="2.8.1"))
    assert result.level == WARN and "dummy-ups -V says 2.8.5" in result.message
    assert result.fix is not None and 'set it to "2.8.5"' in result.fix
    assert check_nut_version(version_context(layout, None)).level == WARN  # no dummy-ups to ask


@pytest.mark.parametrize(
    ("version", "grace", "level", "said"),
    [
        ("2.7.4", 10, FAIL, "no dummy-once mode"),
        ("2.8.0", 10, OK, "no known quirk"),
        ("2.8.1", 10, OK, "shuts down at once"),
        ("2.8.2", 3, WARN, "nocomms_grace = 3 s turns a silence that long into a shutdown"),
        ("2.8.3", 10, OK, "would stick"),
        ("2.8.4", 10, OK, "ALARM instruction"),
    ],
)
def test_quirks_of_each_nut_version(layout: Layout, version: str, grace: float, level: str, said: str) -> None:
    ctx = version_context(layout, version, grace=grace)
    ctx.upsc_answer = UpscAnswer({"ups.status": "OL"}, None)
    result = check_nut_quirks(ctx)
    assert result.level == level and said in result.message, result
    if level == WARN:
        assert result.fix is not None and "nocomms_grace = 10" in result.fix


def test_a_sticky_alarm_on_2_8_3_and_an_ignored_alarm_line_on_2_8_4(layout: Layout) -> None:
    ctx = version_context(layout, "2.8.3")
    layout.port_file.write_text("ups.status: OL\n")
    ctx.upsc_answer = UpscAnswer({"ups.status": "ALARM OL"}, None)
    result = check_nut_quirks(ctx)
    assert result.level == WARN and "#2928" in result.message and result.fix == f"sudo upsdrvctl start {UPS}"
    ctx = version_context(layout, "2.8.5")
    layout.port_file.write_text("ups.status: OL\nups.alarm: fan broken\n")
    result = check_nut_quirks(ctx)
    assert result.level == WARN and "ignores ups.alarm: lines" in result.message


# ------------------------------------------------------------------ the command against a real NUT


@dataclass
class RealNut:
    """A private install made by ``nutbridge setup`` (the port file on a runtime folder, seeded from the state
    folder), one real poll written, and real dummy-ups + upsd reading it."""

    nut: NutStack
    env: dict[str, str]
    config: Path
    mounts: Path

    @property
    def port_file(self) -> Path:
        return self.nut.port_file

    def doctor(self, *args: str) -> tuple[int, dict[str, dict[str, str]]]:
        """``nutbridge doctor solar --no-systemd --json ARGS``: exit status and the checks by name."""
        done = nutbridge("doctor", UPS, "--no-systemd", "--json", *args, env=self.env)
        assert done.returncode in (0, 1), done.stderr
        report = json.loads(done.stdout)
        assert report["ok"] is (done.returncode == 0)
        return done.returncode, {c["name"]: c for c in report["checks"]}


@pytest.fixture(scope="module")
def real_nut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNut]:
    reason = why_not_runnable()
    need(reason is None, reason or "")
    user = nut_user()
    need(user is not None, "NUT's user nut (apt-get install nut-server)")
    assert user is not None
    root = tmp_path_factory.mktemp("doc")  # short: the driver's socket path must stay under 108 bytes
    with contextlib.ExitStack() as closers:
        nut = NutStack(root)
        closers.callback(nut.stop)
        run = root / "run"  # NUT's runtime folder (/run/nut)
        run.mkdir()
        nut.port_file, nut.nocomms_file = run / f"{UPS}.dev", run / f"{UPS}.dev-nocomms"
        nut.write_configs()  # upsd.conf, upsd.users, upsmon.conf; ups.conf and the port file come from setup
        (nut.etc / "ups.conf").write_text("user = root\n")
        nut.port_file.unlink()
        for folder in (nut.state, run):  # as Debian's /var/lib/nut and /run/nut: root:nut 0770
            os.chown(folder, 0, user.pw_gid)
            folder.chmod(0o770)
        mounts = root / "mountinfo"
        mounts.write_text(GOOD_MOUNTS)
        env = {**nut.env, "NUTBRIDGE_MOUNTS": str(mounts), "NUTBRIDGE_RUNPATH": str(run)}
        sim = Simulator(root, mode="sun")
        closers.callback(sim.stop)
        sim.start()
        done = nutbridge("setup", UPS, "--source", f"tcp://127.0.0.1:{sim.port}", "--yes", "--no-systemd", env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (nut.state / f"{UPS}.dev").exists() and not nut.port_file.exists()  # the seed only
        poll = nutbridge(UPS, "-s", env=env)
        assert poll.returncode == 0, poll.stderr  # one real poll in the port file, as nutbridge@'s ExecStartPre
        assert nut.port_file.exists()  # made from the seed, then renamed by the good poll
        nut.start_driver()
        nut.start_upsd()
        wait_for(
            lambda: nut.upsc("ups.status"),
            lambda out: out.startswith("OL"),
            timeout=30,
            what="upsc to show the poll",
            details=nut.describe,
        )
        yield RealNut(nut=nut, env=env, config=nut.etc / f"nutbridge-{UPS}.toml", mounts=mounts)


@pytest.mark.nut
def test_a_good_install_is_all_ok(real_nut: RealNut) -> None:
    os.utime(real_nut.port_file)  # as the daemon's next write would: fresh now
    status, checks = real_nut.doctor()  # upsc asks where upsmon.conf's MONITOR line says
    assert status == 0
    assert {name: c["level"] for name, c in checks.items()} == dict.fromkeys(
        ["config", "config-private", "port-file", "port-file-owner", "port-file-disk", "ups-conf", "driver", "upsc",
         "load-terminal", "upsmon", "nut-version", "nut-quirks"], OK), checks  # fmt: skip
    assert checks["upsc"]["message"].startswith(f"upsc {real_nut.nut.address}: ups.status OL")
    human = nutbridge("doctor", UPS, "--no-systemd", env=real_nut.env)
    assert human.returncode == 0 and human.stdout.rstrip().endswith("solar: all ok (12 checks)"), human.stdout


@contextlib.contextmanager
def replaced(path: Path, change: Callable[[str], str]) -> Iterator[None]:
    old = path.read_bytes()
    path.write_text(change(path.read_text()))
    try:
        yield
    finally:
        path.write_bytes(old)


@contextlib.contextmanager
def chmod(path: Path, mode: int) -> Iterator[None]:
    old = path.stat().st_mode & 0o7777
    path.chmod(mode)
    try:
        yield
    finally:
        path.chmod(old)


@contextlib.contextmanager
def chown(path: Path, uid: int) -> Iterator[None]:
    st = path.stat()
    os.chown(path, uid, st.st_gid)
    try:
        yield
    finally:
        os.chown(path, st.st_uid, st.st_gid)


@contextlib.contextmanager
def stale(path: Path) -> Iterator[None]:
    two_hours_ago = time.time() - 7200
    os.utime(path, (two_hours_ago, two_hours_ago))
    yield


BREAKS: dict[str, tuple[str, Callable[[RealNut], contextlib.AbstractContextManager[None]], str]] = {
    # what is broken: (the check that must FAIL, how to break it, a fix it must give)
    "config world-readable": ("config-private", lambda r: chmod(r.config, 0o644), "chmod 600"),
    "invalid config": (
        "config",
        lambda r: replaced(r.config, lambda t: t.replace("poll_interval = 10", "poll_interval = 0")),
        "nutbridge -c",
    ),
    "port file owned by another user": ("port-file-owner", lambda r: chown(r.port_file, 65534), "sudo chown nut:nut"),
    "port file on tmpfs": (
        "port-file-disk",
        lambda r: replaced(r.mounts, lambda t: t + f"9 22 0:9 / {os.path.realpath(r.nut.state)} rw - tmpfs tmpfs rw\n"),
        "/var/lib/nut/solar.dev",
    ),
    "no ups.conf section": (
        "ups-conf",
        lambda r: replaced(r.nut.etc / "ups.conf", lambda t: "user = root\n"),
        "tee -a",
    ),
    "wrong port": (
        "ups-conf",
        lambda r: replaced(r.nut.etc / "ups.conf", lambda t: t.replace(f"{UPS}.dev", "other.dev")),
        "port =",
    ),
    "wrong mode": (
        "ups-conf",
        lambda r: replaced(r.nut.etc / "ups.conf", lambda t: t.replace("dummy-once", "dummy-loop")),
        "mode = dummy-once",
    ),
    "no MONITOR line": (
        "upsmon",
        lambda r: replaced(r.nut.etc / "upsmon.conf", lambda t: t.replace("MONITOR ", "# MONITOR ")),
        f"MONITOR {UPS}@localhost",
    ),
    "stale data": ("upsc", lambda r: stale(r.port_file), "nutbridge status solar"),
}


@pytest.mark.nut
@pytest.mark.parametrize("broken", list(BREAKS))
def test_each_broken_part_fails_its_own_check_only(real_nut: RealNut, broken: str) -> None:
    name, breaking, fix = BREAKS[broken]
    os.utime(real_nut.port_file)  # fresh now, unless the break says otherwise
    with breaking(real_nut):
        status, checks = real_nut.doctor("--upsd", f"127.0.0.1:{real_nut.nut.port}")
    os.utime(real_nut.port_file)
    assert status == 1
    assert checks[name]["level"] == FAIL, checks[name]
    assert fix in (checks[name]["fix"] or ""), checks[name]
    others = {n: c["level"] for n, c in checks.items() if n != name}
    assert others == dict.fromkeys(others, OK), checks


@pytest.mark.nut
def test_upsc_not_answering(real_nut: RealNut) -> None:
    os.utime(real_nut.port_file)
    status, checks = real_nut.doctor("--upsd", f"127.0.0.1:{free_port()}")  # nobody listens there
    assert status == 1
    assert checks["upsc"]["level"] == FAIL and "Connection" in checks["upsc"]["message"], checks["upsc"]
    assert [n for n, c in checks.items() if c["level"] != OK] == ["upsc"]


@pytest.mark.nut
def test_a_driver_that_stopped(tmp_path_factory: pytest.TempPathFactory) -> None:
    reason = why_not_runnable()
    need(reason is None, reason or "")
    root = tmp_path_factory.mktemp("drv")
    with NutStack(root) as nut:
        env = {**nut.env, "NUTBRIDGE_MOUNTS": str(root / "mountinfo")}
        (root / "mountinfo").write_text(GOOD_MOUNTS)
        pid = read_pid(nut.driver_pidfile)
        assert pid is not None
        kill_pid(pid)
        wait_for(
            lambda: nut.upsc("ups.status"),
            lambda out: "Driver not connected" in out,
            timeout=30,
            what="upsd to lose the driver",
            details=nut.describe,
        )
        done = nutbridge("doctor", UPS, "--no-systemd", "--json", env=env)
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert done.returncode == 1
    assert checks["driver"]["level"] == FAIL and checks["driver"]["fix"] == f"sudo upsdrvctl start {UPS}"
    assert checks["upsc"]["level"] == FAIL and "Driver not connected" in checks["upsc"]["message"]


# ------------------------------------------------------------------ the controller's load terminal


def load_terminal(layout: Layout, **values: str) -> Result | None:
    ctx = layout.context()
    ctx.upsc_answer = UpscAnswer({"ups.status": "OL", "battery.voltage.nominal": "12", **values}, None)
    return check_load_terminal(ctx)


def test_a_load_terminal_switched_by_light_or_clock_fails_naming_the_register(layout: Layout) -> None:
    for control, register in (("light", 1), ("light+timer", 2), ("timer", 3)):  # 0x903D's codes (the reference, (c))
        result = load_terminal(layout, **{"experimental.output.control": control,
                                           "experimental.battery.voltage.disconnect": "11.10"})  # fmt: skip
        assert result is not None and result.level == FAIL, result
        assert f"0x903D = {register}" in result.message and result.fix and "0x903D" in result.fix
        assert "to 0, manual" in result.fix


def test_a_disconnect_that_would_make_lb_all_the_time_fails(layout: Layout) -> None:
    # 12.40 V + 0.30 V margin = 12.70 V: above a full 12 V battery at rest (12.6 V)
    result = load_terminal(layout, **{"experimental.output.control": "manual",
                                       "experimental.battery.voltage.disconnect": "12.40"})  # fmt: skip
    assert result is not None and result.level == FAIL, result
    assert "LB from 12.70 V" in result.message and result.fix and "0x900D" in result.fix and "11.10 V" in result.fix
    good = load_terminal(layout, **{"experimental.output.control": "manual",
                                     "experimental.battery.voltage.disconnect": "11.10"})  # fmt: skip
    assert good is not None and good.level == OK and "LB at 11.40 V or earlier" in good.message


def test_a_device_without_a_load_terminal_skips_the_check(layout: Layout) -> None:
    assert load_terminal(layout) is None  # an Envoy, a Powerwall: nothing of the kind published


def test_the_power_cycle_on_with_no_host_on_the_load_terminal_is_a_warning(layout: Layout) -> None:
    manual = {"experimental.output.control": "manual", "experimental.battery.voltage.disconnect": "11.10"}
    ctx = layout.context()
    assert ctx.config is not None
    ctx.config = dataclasses.replace(ctx.config, power=dataclasses.replace(ctx.config.power, cycle=True))
    ctx.upsc_answer = UpscAnswer({"ups.status": "OL", **manual, "output.current": "0.00"}, None)
    result = check_load_terminal(ctx)
    assert result is not None and result.level == WARN, result
    assert "carries 0 A" in result.message and result.fix and "cycle = false" in result.fix
    ctx.upsc_answer = UpscAnswer({"ups.status": "OL", **manual, "output.current": "0.42"}, None)  # a Pi runs on it
    assert (ok := check_load_terminal(ctx)) is not None and ok.level == OK, ok
    ctx.config = dataclasses.replace(ctx.config, power=dataclasses.replace(ctx.config.power, cycle=False))
    ctx.upsc_answer = UpscAnswer({"ups.status": "OL", **manual, "output.current": "0.00"}, None)
    assert (off := check_load_terminal(ctx)) is not None and off.level == OK, off  # no cycle: nothing to warn of
