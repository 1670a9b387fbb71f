"""From a change on the device to upsd answering with it: driver mode beside port-file mode, one poll a second.

The simulator (its own process) changes its load on a ``load N`` line on its stdin; the clock starts when the
line is written (the simulator applies it as it reads it) and stops when upsd's ``GET VAR <ups> ups.load``, as
upsc asks it, gives the new value (asked every 2 ms on one connection). Driver mode: upsdrvctl starts
nutbridge-driver, which reads the simulator over Modbus TCP and sends each poll's changes to upsd on its socket.
Port-file mode: nutbridge writes the port file, dummy-ups (dummy-once) reads it when it changed, at its own poll.
Samples start at random points of the poll interval. Needs root and Debian's NUT (as tests/nut).
Usage: .venv/bin/python -m bench.driver_latency [SAMPLES]
"""

from __future__ import annotations

import random
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.nut_stack import UPS, DriverModeStack, Nutbridge, NutStack, Simulator

SAMPLES = 40
LOADS = ("load 30", "load 15")  # alternately: each sample changes ups.load
TIMEOUT = 10.0  # seconds a change may take before the sample fails


class TracerDriverStack(DriverModeStack):
    """DriverModeStack with the simulator in its own process as the UPS's port (Modbus TCP at ``sim_port``)."""

    def __init__(self, root: Path, sim_port: int) -> None:
        super().__init__(root)
        self.sim_port = sim_port

    def write_configs(self) -> None:
        super().write_configs()
        (self.etc / "ups.conf").write_text(
            f"driverpath = {self.root / 'drivers'}\nmaxretry = 1\n[{UPS}]\n  driver = nutbridge\n"
            f"  port = tcp://127.0.0.1:{self.sim_port}\n  pollinterval = 1\n"
        )


def asker(port: int) -> Callable[[], str]:
    """GET VAR ups.load on one connection to upsd, as upsc asks it."""
    conn = socket.create_connection(("127.0.0.1", port))
    reader = conn.makefile("rb")

    def get() -> str:
        conn.sendall(f"GET VAR {UPS} ups.load\n".encode())
        return reader.readline().decode().strip()

    return get


def samples(sim: Simulator, get: Callable[[], str], count: int, details: Callable[[], str]) -> list[float]:
    """Seconds from each load change to upsd showing it; ``details`` for the error when one never shows."""
    assert sim.stdin is not None
    found = []
    for i in range(count):
        time.sleep(random.uniform(0.0, 1.0))  # a random point of the poll interval
        before = get()
        start = time.perf_counter()
        sim.stdin.write(LOADS[i % 2].encode() + b"\n")
        sim.stdin.flush()
        while get() == before:
            if time.perf_counter() - start > TIMEOUT:
                raise RuntimeError(f"ups.load stayed {before!r}\n{sim.describe()}\n{details()}")
            time.sleep(0.002)
        found.append(time.perf_counter() - start)
    return found


def report(mode: str, found: list[float]) -> None:
    ms = sorted(t * 1000 for t in found)
    p90 = ms[int(len(ms) * 0.9) - 1]
    print(f"{mode}: change → upsd median {statistics.median(ms):.0f} ms, p90 {p90:.0f} ms, max {ms[-1]:.0f} ms "
          f"({len(ms)} samples, polls every 1 s)")  # fmt: skip


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else SAMPLES
    with tempfile.TemporaryDirectory(dir="/tmp") as name:  # short: the driver socket's path is under 108 bytes
        folder = Path(name)
        sim = Simulator(folder, name="driver-sim")
        port = sim.start()
        try:
            stack = TracerDriverStack(folder / "d", port)
            try:
                stack.start()
                sim.command(LOADS[1])
                report("driver mode", samples(sim, asker(stack.port), count, stack.describe))
            finally:
                stack.stop()
            stack2 = NutStack(folder / "p")
            bridge = None
            try:
                stack2.start()
                args = ["--source", f"tcp://127.0.0.1:{port}", "--port-file", str(stack2.port_file)]
                bridge = Nutbridge(folder, [*args, "--nut-version", "2.8.0", "--poll-interval", "1"], env=stack2.env)
                bridge.start()
                sim.command(LOADS[1])
                details = bridge.describe
                report("port-file mode", samples(sim, asker(stack2.port), count, lambda: details() + stack2.describe()))
            finally:
                if bridge is not None:
                    bridge.stop()
                stack2.stop()
        finally:
            sim.stop()


if __name__ == "__main__":
    main()
