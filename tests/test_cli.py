"""The command line, run as a user would: a real process, real files, the built-in simulator."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nutbridge import __version__
from nutbridge.nut.portfile import parse_values

NUTBRIDGE = [sys.executable, "-m", "nutbridge"]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NUTBRIDGE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_version_and_help() -> None:
    assert run("--version").stdout.strip() == f"nutbridge {__version__}"
    help_text = run("-h").stdout
    for flag in ("-c FILE", "-d", "-s", "-v", "-x", "--source URL", "--simulate", "--port-file", "--poll-interval"):
        assert flag in help_text


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
