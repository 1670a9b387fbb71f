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
def started(*args: str) -> Iterator[str]:
    """Start ``python -m nutbridge.simulator ARGS``; yield the first line it prints, once it serves."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nutbridge.simulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def simulator(*args: str) -> Iterator[int]:
    """The simulator on an ephemeral loopback port; yield the port."""
    with started("--listen", "127.0.0.1:0", *args) as line:
        yield int(line.split(":")[1].split()[0])  # "listening on 127.0.0.1:PORT (...)"


@contextlib.contextmanager
def serial_simulator(*args: str) -> Iterator[Path]:
    """The simulator on one end of a socat pty pair; yield the other end."""
    with tempfile.TemporaryDirectory() as folder:
        ours, its = Path(folder) / "ttyA", Path(folder) / "ttyB"
        socat = start_socat(ours, its)
        try:
            with started("--serial", str(its), *args):  # once it has printed, it has the pty open
                yield ours
        finally:
            socat.terminate()
            socat.wait(timeout=10)
