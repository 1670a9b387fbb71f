"""The standalone simulator as a separate process, for benchmarks that must not count its CPU or memory: on a
loopback TCP port, or on one end of a socat pty pair (a serial line without hardware)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.helpers.tracer import start_socat


@contextlib.contextmanager
def simulator(*args: str) -> Iterator[int]:
    """Start ``python -m nutbridge.simulator`` on an ephemeral loopback port; yield the port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nutbridge.simulator", "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline().split(":")[1].split()[0])  # "listening on 127.0.0.1:PORT (...)"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def serial_simulator(*args: str) -> Iterator[Path]:
    """Start ``python -m nutbridge.simulator --serial`` on one end of a socat pty pair; yield the other end."""
    with tempfile.TemporaryDirectory() as folder:
        ours, its = Path(folder) / "ttyA", Path(folder) / "ttyB"
        socat = start_socat(ours, its)
        proc = subprocess.Popen(
            [sys.executable, "-m", "nutbridge.simulator", "--serial", str(its), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert proc.stdout is not None
            proc.stdout.readline()  # "serving Modbus RTU on ...": it has the port open
            yield ours
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            socat.terminate()
            socat.wait(timeout=10)
