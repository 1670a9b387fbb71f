"""``nutbridge doctor`` and ``nutbridge status`` in driver mode: against a real nutbridge-driver that NUT's own
upsdrvctl starts and NUT's own upsd reads (tests/nut_stack.py), and against a driver socket that says its data is
stale. Every process is private to the test and stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nutbridge.config import Config
from nutbridge.doctor import driver_checks
from nutbridge.doctor.context import FAIL, OK, WARN, Context, Result
from nutbridge.doctor.driver_checks import check_driver_link, check_driver_process, check_driver_socket
from nutbridge.system import nut_user
from tests.nut_stack import (
    START_TIMEOUT,
    UPS,
    UPSDRVCTL,
    DriverModeStack,
    wait_for,
    why_not_runnable,
)

GOOD = ["config", "config-private", "driver-ups-conf", "driver-link", "driver", "driver-socket", "upsc",
        "load-terminal", "upsmon"]  # fmt: skip


def nutbridge(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nutbridge", *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)  # fmt: skip


def doctor(stack: DriverModeStack) -> tuple[int, dict[str, dict[str, str]]]:
    """``nutbridge doctor solar --no-systemd --json``: exit status and the checks by name."""
    done = nutbridge("doctor", UPS, "--no-systemd", "--json", env=stack.env)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, {c["name"]: c for c in json.loads(done.stdout)["checks"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DriverModeStack]:
    reason = why_not_runnable()
    if reason is not None:
        pytest.skip(reason)
    nut = DriverModeStack(tmp_path_factory.mktemp("drv"))  # short: the socket's path must stay under 108 bytes
    with nut.running():
        # as `nutbridge setup --driver` leaves the configuration: 0600, owned by NUT's user
        toml = nut.etc / "nutbridge.toml"
        toml.chmod(0o600)
        user = nut_user()
        if user is not None and os.geteuid() == 0:
            os.chown(toml, user.pw_uid, user.pw_gid)
        yield nut


@pytest.mark.nut
def test_a_running_driver_is_all_ok_and_status_reads_its_socket(stack: DriverModeStack) -> None:
    status, checks = doctor(stack)
    assert status == 0, checks
    assert {name: c["level"] for name, c in checks.items()} == dict.fromkeys(GOOD, OK), checks
    assert checks["driver-socket"]["message"].endswith("data fresh")
    assert "driver.name nutbridge" in checks["upsc"]["message"]
    human = nutbridge("doctor", UPS, "--no-systemd", env=stack.env)
    assert human.returncode == 0 and human.stdout.rstrip().endswith(f"{UPS}: all ok ({len(GOOD)} checks)")

    said = nutbridge("status", UPS, "--json", env=stack.env)
    assert said.returncode == 0, said.stderr
    info = json.loads(said.stdout)
    assert info["fresh"] is True and info["comms"] == "ok" and info["source"] == str(stack.state / f"nutbridge-{UPS}")
    assert info["variables"]["driver.name"] == "nutbridge"
    assert info["variables"]["ups.status"].split()[0] in ("OL", "OB")
    screen = nutbridge("status", UPS, env=stack.env)
    assert screen.returncode == 0 and screen.stdout.startswith(f"{UPS}: O"), screen.stdout


def status_as(user: str, argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """``nutbridge status ARGV`` run by ``user`` (a forked child that drops root: the venv need not be readable by
    that user, as the code is loaded already): exit status, stdout, stderr."""
    from nutbridge.status_cmd import main

    entry = pwd.getpwnam(user)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            sys.stdout = os.fdopen(out_w, "w")  # not pytest's capture, which the parent keeps
            sys.stderr = os.fdopen(err_w, "w")
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            os.environ.clear()
            os.environ.update(env)
            code = main(argv)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    with os.fdopen(out_r) as out, os.fdopen(err_r) as err:
        said, complained = out.read(), err.read()
    _, waited = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(waited), said, complained


@pytest.mark.nut
@pytest.mark.skipif(os.geteuid() != 0, reason="drops root for another user")
def test_a_user_outside_nuts_group_gets_status_from_upsd(stack: DriverModeStack) -> None:
    """The config folder and the socket are NUT's (here root's, 0700): status asks upsd through upsc instead."""
    env = {**stack.env, "PATH": os.environ["PATH"]}
    code, out, err = status_as("nobody", [UPS, "--json", "--upsd", stack.address.split("@")[1]], env)
    assert code == 0, out + err
    assert "Permission denied" in err and "asking upsd" in err  # says why it took the other way
    info = json.loads(out)
    assert info["source"] == f"upsc {stack.address}" and info["fresh"] is True
    assert info["variables"]["driver.name"] == "nutbridge"  # what upsd relays from the driver
    assert info["variables"]["ups.status"].split()[0] in ("OL", "OB")


@pytest.mark.nut
def test_a_link_to_another_program_is_a_warning_of_the_link_check_only(stack: DriverModeStack) -> None:
    link = stack.root / "drivers" / "nutbridge"
    target = os.readlink(link)
    link.unlink()
    link.symlink_to("/bin/true")
    try:
        status, checks = doctor(stack)
    finally:
        link.unlink()
        link.symlink_to(target)
    assert status == 0  # a warning: upsdrvctl still starts a program, only not this nutbridge
    assert checks["driver-link"]["level"] == WARN and "/bin/true" in checks["driver-link"]["message"]
    assert {name: c["level"] for name, c in checks.items() if name != "driver-link"} == dict.fromkeys(
        [n for n in GOOD if n != "driver-link"], OK
    )


@pytest.mark.nut
def test_a_stopped_driver_fails_the_driver_socket_and_upsc(stack: DriverModeStack) -> None:
    # the module's last test: it stops the driver
    done = stack.run([str(UPSDRVCTL), "-u", "root", "stop", UPS])
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(stack.upsc, lambda out: "Driver not connected" in out, timeout=START_TIMEOUT,
             what="upsd to lose the driver", details=stack.describe)  # fmt: skip
    status, checks = doctor(stack)
    assert status == 1
    for name in ("driver", "driver-socket", "upsc"):
        assert checks[name]["level"] == FAIL and checks[name]["fix"] == f"sudo upsdrvctl start {UPS}", checks[name]
    assert "Driver not connected" in checks["upsc"]["message"]
    assert checks["driver-link"]["level"] == OK and checks["driver-ups-conf"]["level"] == OK
    said = nutbridge("status", UPS, env=stack.env)
    assert said.returncode == 1 and "cannot ask" in said.stderr


# ------------------------------------------------------------------ a driver that says its data is stale


@contextlib.contextmanager
def stale_driver(path: Path) -> Iterator[None]:
    """A driver socket at ``path`` that answers PING and dumps its values as stale, as dstate.c does."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            with conn, conn.makefile("rb") as lines:
                for line in lines:
                    if line == b"PING\n":
                        conn.sendall(b"PONG\n")
                    elif line == b"DUMPALL\n":
                        conn.sendall(b'DATASTALE\nSETINFO ups.status "OB"\nSETINFO driver.name "nutbridge"\nDUMPDONE\n')

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as waker:
            waker.connect(str(path))  # wakes an accept() still waiting: no client came
        thread.join(timeout=5)
        server.close()


def test_stale_data_on_the_socket_is_a_fail_and_a_stale_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUT_STATEPATH", str(tmp_path))
    monkeypatch.setenv("NUT_CONFPATH", str(tmp_path))
    (tmp_path / "ups.conf").write_text(f"[{UPS}]\n\tdriver = nutbridge\n\tport = simulate\n")
    ctx = Context(ups=UPS, confpath=tmp_path, config_file=tmp_path / "x.toml", config=Config(), config_error=None,
                  port_file=tmp_path / "none", user=pwd.getpwuid(os.geteuid()), driver_mode=True)  # fmt: skip
    missing = check_driver_socket(ctx)
    assert missing.level == FAIL and "no driver socket" in missing.message
    with stale_driver(tmp_path / f"nutbridge-{UPS}"):
        result = check_driver_socket(ctx)
    assert result.level == FAIL and "ups.status OB" in result.message and "stale" in result.message
    (tmp_path / f"nutbridge-{UPS}").unlink()
    with stale_driver(tmp_path / f"nutbridge-{UPS}"):
        said = nutbridge("status", UPS, "--json", env={**os.environ})
    assert said.returncode == 3, said.stderr
    info = json.loads(said.stdout)
    assert info["fresh"] is False and info["comms"] == "lost" and info["variables"]["ups.status"] == "OB"


@pytest.mark.nut
@pytest.mark.skipif(os.geteuid() != 0, reason="makes a folder closed to another user")
def test_a_driver_user_who_cannot_read_nutbridge_fails_the_link_check(
    stack: DriverModeStack, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """A venv in root's home: NUT starts the driver as root, it drops to ups.conf's user, then cannot import the
    rest of nutbridge. The doctor names the folder that stops it; a readable install, or root, passes."""
    tmp_path = Path(tempfile.mkdtemp(prefix="nb-"))  # in /tmp itself: pytest's own folder is closed to others
    request.addfinalizer(lambda: shutil.rmtree(tmp_path, ignore_errors=True))
    closed = tmp_path / "root-only"
    (closed / "venv").mkdir(parents=True)
    closed.chmod(0o700)
    opened = tmp_path / "open"
    opened.mkdir()
    tmp_path.chmod(0o755)
    conf = tmp_path / "etc"
    conf.mkdir()
    text = (stack.etc / "ups.conf").read_text()

    def check(user_line: str, folder: Path) -> Result:
        (conf / "ups.conf").write_text(text.replace("user = root\n", user_line))
        monkeypatch.setattr(driver_checks, "driver_files", lambda program: [(folder, 5)])
        ctx = Context(ups=UPS, confpath=conf, config_file=stack.etc / "nutbridge.toml", config=Config(),
                      config_error=None, port_file=tmp_path / "unused", user=pwd.getpwnam("nobody"))  # fmt: skip
        return check_driver_link(ctx)

    result = check("user = nobody\n", closed / "venv")
    assert result.level == FAIL, result
    assert f"nobody, who may not read {closed} (owner root:root, mode 0700)" in result.message
    assert check("user = nobody\n", opened).level == OK
    assert check("user = root\n", closed / "venv").level == OK


def test_an_active_unit_without_the_drop_in_is_a_warning(tmp_path: Path) -> None:
    """systemd runs nut-driver@solar; without NUT_IGNORE_CHECKPROCNAME in its environment (setup's drop-in or
    nut.conf), a NUT 2.8.3+ upsdrvctl could not stop the Python driver: a warning that says how to fix it."""
    systemctl = tmp_path / "systemctl"
    environment = tmp_path / "environment"
    systemctl.write_text(
        '#!/bin/sh\ncase "$1" in is-active) echo active ;; show) cat "$(dirname "$0")/environment" ;; esac\n'
    )
    systemctl.chmod(0o755)

    def check(said: str, nut_conf: str | None = None) -> Result:
        environment.write_text(said)
        if nut_conf is not None:
            (tmp_path / "nut.conf").write_text(nut_conf)
        ctx = Context(ups=UPS, confpath=tmp_path, config_file=tmp_path / "nutbridge.toml", config=Config(),
                      config_error=None, port_file=tmp_path / "unused", user=pwd.getpwuid(os.geteuid()),
                      systemctl=[str(systemctl)])  # fmt: skip
        return check_driver_process(ctx)

    bare = check("Environment=NUT_IGNORE_NOWAIT=true\n")
    assert bare.level == WARN and "NUT 2.8.3 and later will not stop it" in bare.message
    assert bare.fix is not None and f"nutbridge setup {UPS} --driver" in bare.fix
    assert check("Environment=NUT_IGNORE_NOWAIT=true NUT_IGNORE_CHECKPROCNAME=true\n").level == OK
    assert check("Environment=\n", nut_conf="MODE=standalone\nNUT_IGNORE_CHECKPROCNAME=true\n").level == OK
