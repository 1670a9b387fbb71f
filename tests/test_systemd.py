"""The systemd unit is checked by systemd-analyze verify, as systemd itself would load it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import need

UNIT = Path(__file__).parent.parent / "systemd" / "nutbridge@.service"


def test_unit_verifies(tmp_path: Path) -> None:
    need(shutil.which("systemd-analyze") is not None, "systemd-analyze (Debian package systemd)")
    # verify checks that ExecStart exists: point it at this environment's nutbridge.
    binary = Path(sys.executable).parent / "nutbridge"
    assert binary.exists()
    text = UNIT.read_text().replace("/usr/local/bin/nutbridge", str(binary))
    unit = tmp_path / "nutbridge@solar.service"
    unit.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, check=False
    )
    problems = [
        line
        for line in done.stderr.splitlines()
        if "nut-driver" not in line  # NUT's own units need not be installed here
    ]
    assert done.returncode == 0 or not problems, done.stderr
    assert problems == [], done.stderr


def test_unit_follows_enphase_monitor() -> None:
    text = UNIT.read_text()
    for line in (
        "PartOf=nut-driver.target",
        "Before=nut-driver@%i.service",
        "ExecStartPre=-/usr/local/bin/nutbridge -s %i",
        "ExecStart=/usr/local/bin/nutbridge %i",
        "Restart=always",
        "RestartPreventExitStatus=78",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert line in text.splitlines()


def test_driver_drop_in_shortens_the_restart_delay() -> None:
    lines = (UNIT.parent / "nut-driver-restart.conf").read_text().splitlines()
    assert "[Service]" in lines and "RestartSec=2s" in lines
