"""Resident memory (VmRSS) of the idle daemon, after it has connected and polled a few times.

Measured for a daemon reading a separate simulator process (as on real hardware) and for --simulate
(simulator in the same process). Usage: .venv/bin/python -m bench.idle_memory
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.simproc import simulator

SETTLE = 6.0  # seconds: start-up, connect, a few polls


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def daemon_rss(args: list[str], folder: Path) -> float:
    port_file = folder / "solar.dev"
    port_file.write_text("")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nutbridge", "--port-file", str(port_file), "--poll-interval", "2", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(SETTLE)
        if proc.poll() is not None or "ups.status" not in port_file.read_text():
            raise RuntimeError("the daemon did not run")
        return rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    with simulator() as port, tempfile.TemporaryDirectory() as folder:
        alone = daemon_rss(["--source", f"tcp://127.0.0.1:{port}"], Path(folder))
        simulated = daemon_rss(["--simulate"], Path(folder))
    print(f"idle daemon RSS: {alone:.1f} MB reading a Tracer over Modbus TCP, {simulated:.1f} MB with --simulate")


if __name__ == "__main__":
    main()
