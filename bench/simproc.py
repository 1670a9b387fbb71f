"""The standalone simulator as a separate process, for benchmarks that must not count its CPU or memory."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator


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
