"""Cold start of `nutbridge -s` (the unit's ExecStartPre, at every boot): from exec to exit, with the file
written, reading a Tracer over Modbus TCP. Also the time Python spends importing, from -X importtime.

The simulator runs in its own process. Usage: .venv/bin/python -m bench.cold_start
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.simproc import simulator

RUNS = 15


def once(args: list[str], port_file: Path) -> float:
    port_file.write_text("# bench\n")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "nutbridge", "-s", "--port-file", str(port_file), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or "ups.status" not in port_file.read_text():
        raise RuntimeError(f"nutbridge -s failed: {done.stderr}")
    return elapsed


def import_ms(args: list[str], port_file: Path) -> tuple[float, list[str]]:
    """Total import time and the slowest top-level packages, from -X importtime."""
    port_file.write_text("# bench\n")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nutbridge", "-s", "--port-file", str(port_file), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    rows = [re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line) for line in done.stderr.splitlines()]
    top = [(int(m[2]), m[4]) for m in rows if m and len(m[3]) == 1]  # top-level imports: cumulative µs
    total = sum(us for us, _ in top) / 1000
    slowest = [f"{name} {us / 1000:.0f} ms" for us, name in sorted(top, reverse=True)[:4]]
    return total, slowest


def main() -> None:
    with simulator() as port, tempfile.TemporaryDirectory() as folder:
        port_file = Path(folder) / "solar.dev"
        for label, args in (
            ("NUT version given", ["--source", f"tcp://127.0.0.1:{port}", "--nut-version", "2.8.0"]),
            ("NUT version from dummy-ups -V", ["--source", f"tcp://127.0.0.1:{port}"]),
        ):
            once(args, port_file)  # warm the page cache, as a second boot would be
            times = [once(args, port_file) for _ in range(RUNS)]
            median, best = statistics.median(times) * 1000, min(times) * 1000
            print(f"nutbridge -s, {label}: median {median:.0f} ms, min {best:.0f} ms")
        total, slowest = import_ms(["--source", f"tcp://127.0.0.1:{port}", "--nut-version", "2.8.0"], port_file)
        print(f"  of which imports: {total:.0f} ms; slowest: {', '.join(slowest)}")


if __name__ == "__main__":
    main()
