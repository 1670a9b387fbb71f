"""A serial line without hardware: a socat pty pair."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.helpers import GUARD


def start_socat(a: Path, b: Path) -> subprocess.Popen[bytes]:
    """Two linked pseudo-terminals: a serial line with no hardware. The links appear 0.1-0.5 s after start."""
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(int(GUARD / 0.05)):  # a guard against a hang
        if (a.exists() and b.exists()) or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert a.exists() and b.exists(), "socat did not create the pty pair"
    return proc
