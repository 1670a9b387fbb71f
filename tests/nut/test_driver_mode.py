"""Driver mode end to end: NUT's own upsdrvctl starts nutbridge-driver on the built-in simulator, NUT's own upsd
connects to its socket, and upsc reads what it publishes; a driver that stops or crashes is seen by upsd as gone,
never as old values served on. Every process is private to the test (tests/nut_stack.py) and stopped by PID."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nut_stack import START_TIMEOUT, DriverModeStack, pid_alive, require_nut, wait_for

pytestmark = pytest.mark.nut

require_nut()

NOT_CONNECTED = "Error: Driver not connected"
UNIT_FOLDERS = (Path("/lib/systemd/system/nut-driver@.service"), Path("/usr/lib/systemd/system/nut-driver@.service"))


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DriverModeStack]:
    with DriverModeStack(tmp_path).running() as nut:
        yield nut


def test_upsdrvctl_starts_the_driver_and_upsc_reads_it(stack: DriverModeStack) -> None:
    status = stack.status_words()
    assert set(status) <= {"OL", "OB", "LB", "CHRG", "DISCHRG", "ALARM"}
    assert stack.upsc("driver.name") == "nutbridge"
    assert stack.upsc("driver.parameter.port") == "simulate"
    assert 0 <= int(stack.upsc("battery.charge")) <= 100
    # the simulator's voltage moves with each poll: a later value reaches upsc without anything restarted
    first = stack.upsc("battery.voltage")
    wait_for(lambda: stack.upsc("battery.voltage"), lambda v: v != first, timeout=START_TIMEOUT,
             what="a new battery.voltage from a later poll", details=stack.describe)  # fmt: skip
    done = stack.run([str(stack.restart_command.split()[0]), "-u", "root", "stop", "solar"])
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(stack.upsc, lambda out: out == NOT_CONNECTED, timeout=START_TIMEOUT,
             what="upsc to say the driver is gone after upsdrvctl stop", details=stack.describe)  # fmt: skip
    assert not stack.driver_pidfile.exists()


def test_a_crashed_driver_is_gone_for_upsd_not_old_values(stack: DriverModeStack) -> None:
    pid = stack.driver_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # no clean-up at all: the socket closes with the process
    wait_for(stack.upsc, lambda out: out == NOT_CONNECTED, timeout=START_TIMEOUT,
             what="upsc to say the driver is gone after a SIGKILL", details=stack.describe)  # fmt: skip
    assert not pid_alive(pid)


def unit_settings(unit: Path, instance: str) -> dict[str, list[str]]:
    """Type, ExecStart and ExecStop of a systemd unit file, split as systemd splits them, %i the instance."""
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key in ("Type", "ExecStart", "ExecStop"):
            found[key] = [word.replace("%i", instance) for word in shlex.split(value)]
    return found


def test_nut_driver_unit_starts_and_stops_it_as_systemd_would(tmp_path: Path) -> None:
    """Debian's nut-driver@.service runs NUT's driver enumerator and upsdrvctl without -u: up to NUT 2.8.1 as
    Type=forking (ExecStart returns once the driver is ready and leaves it running), from 2.8.5 as
    Type=notify-reload with upsdrvctl -FF (ExecStart stays, and systemd waits for READY=1 from any process of
    the unit: the driver's). ExecStop must stop it. No systemd here: the unit's own command lines, run as
    systemd runs them, with a notify socket of the test's own for the notify types."""
    unit = next((p for p in UNIT_FOLDERS if p.exists()), None)
    assert unit is not None, f"nut-server installs nut-driver@.service in one of {UNIT_FOLDERS}"
    settings = unit_settings(unit, "solar")
    kind = settings.get("Type", ["simple"])[0]
    assert kind in ("forking", "notify", "notify-reload"), f"{unit}: Type={kind}, which this test does not know"
    stack = DriverModeStack(tmp_path)
    service: subprocess.Popen[str] | None = None
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = Path(tempfile.mkdtemp(prefix="nb-")) / "notify"
    try:
        stack.write_configs()  # ups.conf's user = root: the test's folders are root's, closed to NUT's user
        stack.start_upsd()
        if kind == "forking":
            started = stack.run(settings["ExecStart"])
            assert started.returncode == 0, started.stdout + started.stderr
        else:
            notify.bind(str(notify_path))
            notify.settimeout(START_TIMEOUT)
            service = subprocess.Popen(settings["ExecStart"], env={**stack.env, "NOTIFY_SOCKET": str(notify_path)},
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
            said = notify.recv(4096)  # what systemd waits for before it calls the unit started
            assert b"READY=1" in said.split(b"\n"), said
            assert service.poll() is None  # ExecStart is the service: it runs on
        pid = stack.driver_pid()
        assert pid is not None and pid_alive(pid)
        wait_for(stack.status_words, lambda words: words[:1] in (["OL"], ["OB"]), timeout=START_TIMEOUT,
                 what="ups.status after ExecStart", details=stack.describe)  # fmt: skip
        stopped = stack.run(settings["ExecStop"])
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        wait_for(stack.upsc, lambda out: out == NOT_CONNECTED, timeout=START_TIMEOUT,
                 what="upsc to say the driver is gone after ExecStop", details=stack.describe)  # fmt: skip
        wait_for(lambda: pid_alive(pid), lambda alive: not alive, timeout=START_TIMEOUT,
                 what="the driver's process to end after ExecStop", details=stack.describe)  # fmt: skip
        if service is not None:
            assert service.wait(timeout=START_TIMEOUT) is not None  # upsdrvctl -FF leaves with its driver
    finally:
        if service is not None and service.poll() is None:
            service.kill()
            service.wait()
        notify.close()
        shutil.rmtree(notify_path.parent, ignore_errors=True)
        stack.stop()


def test_nuts_own_driver_exit_on_the_socket_stops_it(stack: DriverModeStack) -> None:
    """What NUT 2.8.5's upsdrvctl sends a driver without a PID file, and a new driver to the one it replaces:
    ``INSTCMD driver.exit``, answered with its TRACKING status; then the driver leaves as on SIGTERM."""
    pid = stack.driver_pid()
    assert pid is not None
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(START_TIMEOUT)
        conn.connect(str(stack.state / "nutbridge-solar"))
        conn.sendall(b"NOBROADCAST\nINSTCMD driver.exit TRACKING x1\n")
        said = b""
        while b"TRACKING x1" not in said:
            chunk = conn.recv(4096)
            assert chunk, f"closed before the answer: {said!r}"
            said += chunk
    assert b"TRACKING x1 0\n" in said  # STAT_INSTCMD_HANDLED
    wait_for(stack.upsc, lambda out: out == NOT_CONNECTED, timeout=START_TIMEOUT,
             what="upsc to say the driver is gone after driver.exit", details=stack.describe)  # fmt: skip
    wait_for(lambda: pid_alive(pid), lambda alive: not alive, timeout=START_TIMEOUT,
             what="the driver's process to end", details=stack.describe)  # fmt: skip
    assert not stack.driver_pidfile.exists()  # it left as it leaves on SIGTERM: its files removed
