"""``nutbridge status``: from a running daemon's API, from the port file, exit statuses for scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from nutbridge.status_cmd import sparkline
from tests.conftest import daemon_config
from tests.helpers import free_port


def status(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nutbridge", "status", *args], capture_output=True, text=True,
                          timeout=30, check=False, env=env)  # fmt: skip


def test_a_sparkline_spans_its_range() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7], width=8) == "▁▂▃▄▅▆▇█"
    assert len(sparkline([float(i % 50) for i in range(720)])) <= 48
    assert sparkline([]) == "(no data yet today)"


def test_status_of_a_running_daemon_and_of_one_that_lost_its_device(tmp_path: Path) -> None:
    port = free_port()
    toml = daemon_config(tmp_path, f'[datalog]\nfolder = "log"\n[api]\nlisten = "127.0.0.1:{port}"\n')
    daemon = subprocess.Popen([sys.executable, "-m", "nutbridge", "-c", str(toml)], stdin=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        run = status("-c", str(toml))
        while run.returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.3)
            run = status("-c", str(toml))
        assert run.returncode == 0, run.stdout + run.stderr
        assert "nutbridge: OL" in run.stdout and "fresh: comms ok" in run.stdout and "today PV" in run.stdout
        data = json.loads(status("--api", f"http://127.0.0.1:{port}", "--json").stdout)
        assert data["fresh"] is True and data["variables"]["ups.status"].startswith("OL")
        assert data["today"]["pv_watts"] and data["today"]["charge_percent"]
        assert daemon.stdin is not None
        daemon.stdin.write(b"silent\n")  # the simulator stops answering: after the grace, nocomms
        daemon.stdin.flush()
        deadline = time.monotonic() + 40
        while "comms lost" not in (run := status("-c", str(toml))).stdout and time.monotonic() < deadline:
            assert run.returncode in (0, 3), run.stdout  # fresh, then stale within the grace
            time.sleep(0.5)
        assert run.returncode == 3 and "STALE: comms lost" in run.stdout, run.stdout
    finally:
        daemon.terminate()
        daemon.communicate(timeout=10)  # closes its stdin too
    assert status("--api", f"http://127.0.0.1:{port}").returncode == 1  # nobody answers


def test_without_an_api_it_reads_the_port_file(tmp_path: Path) -> None:
    toml = daemon_config(tmp_path, "")
    port_file = tmp_path / "solar.dev"
    port_file.write_text("ups.status: OB DISCHRG\nbattery.charge: 55 # nutbridge\nbattery.runtime: 7260\n")
    run = status("-c", str(toml))
    assert run.returncode == 0, run.stderr
    assert "OB DISCHRG (on battery, discharging)" in run.stdout and "battery 55 %" in run.stdout
    assert "runtime 2 h 01 min" in run.stdout
    os.utime(port_file, (time.time() - 600, time.time() - 600))
    assert status("-c", str(toml)).returncode == 3  # 10 minutes old at a 0.5 s interval: stale
    port_file.rename(tmp_path / "solar.dev-nocomms")
    run = status("-c", str(toml), "--json")
    assert run.returncode == 3 and json.loads(run.stdout)["comms"] == "lost"
