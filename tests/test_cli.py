"""The command line, run as a user would: a real process, real files, the built-in simulator."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from nutbridge import __version__
from nutbridge.nut.portfile_text import parse_values
from tests.conftest import read_only
from tests.helpers import NUTBRIDGE, free_port, run


def test_version_and_help() -> None:
    assert run("--version").stdout.strip() == f"nutbridge {__version__}"
    help_text = run("-h").stdout
    for flag in ("-c FILE", "-d", "-s", "-v", "-x", "--source URL", "--simulate", "--port-file", "--poll-interval"):
        assert flag in help_text
    assert "nutbridge capture" in help_text
    capture_help = run("capture", "-h")
    assert capture_help.returncode == 0 and "-o OUT" in capture_help.stdout and "-c FILE" in capture_help.stdout


def test_single_poll_on_the_simulator_writes_and_exits_0(port_file: Path) -> None:
    done = run("--simulate", "--port-file", str(port_file), "-s")
    assert done.returncode == 0, done.stderr
    values = parse_values(port_file.read_text())
    assert values["ups.status"].startswith(("OL", "OB"))
    assert 0 <= float(values["battery.charge"]) <= 100
    assert port_file.read_text().startswith("# written by hand\nbattery.charge.low: 25\n")
    assert ">>>>>" not in done.stderr  # no pymodbus frame dumps


def test_single_poll_without_a_device_exits_1_and_goes_nocomms(port_file: Path) -> None:
    done = run("--source", f"tcp://127.0.0.1:{free_port()}", "--port-file", str(port_file), "-s")
    assert done.returncode == 1
    assert "lost contact" in done.stderr and "cannot open tcp://127.0.0.1" in done.stderr
    assert Path(f"{port_file}-nocomms").exists() and not port_file.exists()
    assert done.stderr.count("\n") <= 3, done.stderr  # a few clear lines, no tracebacks


def test_x_hides_the_port_file(port_file: Path) -> None:
    assert run("--simulate", "--port-file", str(port_file), "-x").returncode == 0
    assert not port_file.exists() and Path(f"{port_file}-nocomms").exists()
    assert run("--simulate", "--port-file", str(port_file), "-x").returncode == 0  # already hidden: fine
    done = run("--simulate", "--port-file", str(port_file), "-s")
    assert done.returncode == 0 and port_file.exists()  # the first good poll brings it back


def test_missing_port_file_exits_78_with_a_clear_line(tmp_path: Path) -> None:
    done = run("--simulate", "--port-file", str(tmp_path / "solar.dev"))
    assert done.returncode == 78
    assert "solar.dev does not exist (nor solar.dev-nocomms); create it first" in done.stderr
    assert "Traceback" not in done.stderr


def test_config_errors_exit_78(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[monitor]\npoll_interval = 'fast'\n")
    done = run("-c", str(bad))
    assert done.returncode == 78
    assert f"{bad}: monitor.poll_interval = 'fast' is not allowed" in done.stderr
    assert run("--simulate").returncode == 78
    assert run("--simulate", "--port-file", "x", "--poll-interval", "0.1").returncode == 78


def test_secret_never_printed(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("[source]\npassword = 'hunter2-secret'\n")
    conf.chmod(0o644)
    for args in (("-c", str(conf)), ("-d", "-d", "-c", str(conf))):
        done = run(*args)
        assert done.returncode == 78
        assert "hunter2" not in done.stdout + done.stderr


def test_ups_name_reads_nut_confpath(tmp_path: Path, port_file: Path) -> None:
    (tmp_path / "nutbridge-solar.toml").write_text(f'[nut]\nport_file = "{port_file}"\n')
    env = {**os.environ, "NUT_CONFPATH": str(tmp_path)}
    done = run("--simulate", "-s", "solar", env=env)
    assert done.returncode == 0, done.stderr
    assert "ups.status" in port_file.read_text()


def test_daemon_prints_polls_with_v_and_stops_cleanly_on_sigterm(port_file: Path) -> None:
    proc = subprocess.Popen(
        [*NUTBRIDGE, "--simulate", "--port-file", str(port_file), "--poll-interval", "0.3", "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert all("battery" in line and "PV" in line for line in lines), lines
    assert "stopped after" in err


def test_demo_prints_its_folder_and_writes_there() -> None:
    proc = subprocess.Popen(
        [*NUTBRIDGE, "--demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        folder = Path(proc.stdout.readline().split(":", 1)[1].strip())
        proc.stdin.write("night\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        status = ""
        while time.monotonic() < deadline and not status.startswith("OB"):
            line = proc.stdout.readline()
            status = line.split()[1] if line[:2].isdigit() else status
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert status.startswith("OB"), "the demo never showed the night command"
    text = (folder / "solar.dev").read_text()
    shutil.rmtree(folder)
    assert text.startswith("# nutbridge demo port file")
    assert parse_values(text)["ups.status"].startswith("OB")


@pytest.mark.parametrize("flag", ["--source", "--port-file"])
def test_demo_refuses_conflicting_flags(flag: str) -> None:
    assert run("--demo", flag, "x").returncode == 2


def start_daemon(port_file: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*NUTBRIDGE, "--simulate", "--port-file", str(port_file), "--nut-version", "2.8.0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # a SIGABRT prints every thread's stack: see stopped()
    )


def stopped(proc: subprocess.Popen[str], what: str) -> str:
    """The daemon's stderr once it has exited; if it is still running 20 s after ``what``, its threads' stacks
    (faulthandler, on SIGABRT) in the failure, and nothing left behind for the next test."""
    try:
        return proc.communicate(timeout=20)[1]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            err = proc.communicate(timeout=10)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            err = proc.communicate()[1]
        pytest.fail(f"still running 20 s after {what}; its stacks:\n{err[-6000:]}")


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_closed_stdout_never_stops_the_daemon(port_file: Path) -> None:
    proc = start_daemon(port_file, "-v", "--poll-interval", "0.2")
    assert proc.stdout is not None
    try:
        assert "battery" in proc.stdout.readline()
        proc.stdout.close()  # what `| head -1` does
        for _ in range(2):
            port_file.write_text("# by hand\n")  # each poll after this must write the variables again
            wait_until(lambda: "ups.status" in port_file.read_text(), "a poll after stdout closed")
        assert proc.poll() is None, "the daemon ended when its stdout closed"
    finally:
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=20)[1]
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert err.count("poll printer (stdout): BrokenPipeError") == 1, err


def catches(pid: int, sig: int) -> bool:
    """True once process ``pid`` has a handler for ``sig`` (SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True  # gone already
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(mask & (1 << (sig - 1)))


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.06, 0.1, 0.15, 0.25, 0.4])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_at_any_moment_of_start_up_stops_it_quietly(port_file: Path, delay: float, sig: int) -> None:
    proc = start_daemon(port_file, "--poll-interval", "0.2")
    if sig == signal.SIGINT:
        # Python's own start-up turns an early SIGINT into a fatal error before any program runs; from the
        # moment nutbridge runs (its first act is to catch SIGTERM), a Ctrl-C must be quiet.
        wait_until(lambda: catches(proc.pid, signal.SIGTERM), "nutbridge's first signal handler")
    time.sleep(delay)
    proc.send_signal(sig)
    err = stopped(proc, f"signal {sig} at {delay} s")
    assert "Traceback" not in err and "Exception" not in err, err
    assert proc.returncode in (0, -sig), err  # -sig: it arrived before Python itself was running


def test_sighup_reconnects_and_keeps_running(port_file: Path) -> None:
    proc = start_daemon(port_file, "--poll-interval", "0.2", "-v")
    assert proc.stdout is not None
    try:
        proc.stdout.readline()
        proc.send_signal(signal.SIGHUP)
        lines = [proc.stdout.readline() for _ in range(5)]
        assert proc.poll() is None
        assert all("battery" in line for line in lines), lines
    finally:
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=20)[1]
    assert proc.returncode == 0
    assert "SIGHUP: reconnecting to the device" in err


def test_s_exits_0_only_when_the_file_holds_the_fresh_poll(port_file: Path) -> None:
    future = int(time.time()) + 86400  # the box booted with its clock a day behind the file
    os.utime(port_file, (future, future))
    done = run("--simulate", "--port-file", str(port_file), "-s")
    assert done.returncode == 0, done.stderr
    assert "ahead of the clock" in done.stderr
    assert "ups.status" in port_file.read_text()
    port_file.write_text("# by hand: every variable must be written again\n")
    before = port_file.read_text()
    with read_only(port_file.parent):
        unwritable = run("--simulate", "--port-file", str(port_file), "-s")
    assert unwritable.returncode == 1, unwritable.stderr  # the device answered, but the file holds old values
    assert "folder not writable; the file is unchanged" in unwritable.stderr
    assert port_file.read_text() == before


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("rtu:///dev/ttyUSB0?bytesize=9", "bytesize=9"),
        ("rtu:///dev/ttyUSB0?stopbits=7", "stopbits=7"),
        ("rtu:///dev/ttyUSB0?baudrate=-1", "baudrate=-1"),
        ("tcp://me:hunter2@127.0.0.1:502", "Modbus has no user or password"),
    ],
)
def test_bad_serial_options_and_urls_exit_78_without_a_traceback(port_file: Path, source: str, message: str) -> None:
    done = run("--source", source, "--port-file", str(port_file), "-s")
    assert done.returncode == 78, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr and "hunter2" not in done.stderr


def test_unbalanced_quote_in_the_restart_command_exits_78(tmp_path: Path, port_file: Path) -> None:
    conf = tmp_path / "c.toml"
    restart = 'driver_restart_command = "a \'b"\n'
    conf.write_text(f"[source]\nkind = 'simulator'\n[nut]\nport_file = '{port_file}'\n{restart}")
    done = run("-c", str(conf), "-s")
    assert done.returncode == 78 and "is not a valid command line" in done.stderr
