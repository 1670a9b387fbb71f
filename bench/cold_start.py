"""Cold start of `nutbridge -s` (the unit's ExecStartPre, at every boot): from exec to exit, with the file
written, reading a Tracer over Modbus TCP. Also the time Python spends importing, from -X importtime.

The simulator runs in its own process. Usage: .venv/bin/python -m bench.cold_start [--against OLD_TREE] [--runs N]
[--no-bytecode]: the start-ups alternate between this tree and OLD_TREE when given; bench/startup.py says what the
bytecode options mean.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.simproc import simulator
from bench.startup import Tree, add_arguments, bytecode_note, trees

RUNS = 15  # start-ups of each tree (--runs)
IMPORT_RUNS = 5  # -X importtime runs (of each tree), alternated


def once(args: list[str], port_file: Path, tree: Tree, env: dict[str, str]) -> float:
    port_file.write_text("# bench\n")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "nutbridge", "-s", "--port-file", str(port_file), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=tree.path,
        env=env,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or "ups.status" not in port_file.read_text():
        raise RuntimeError(f"nutbridge -s failed: {done.stderr}")
    return elapsed


def import_ms(args: list[str], port_file: Path, tree: Tree, env: dict[str, str]) -> tuple[float, list[str]]:
    """Total import time and the slowest top-level packages, from -X importtime."""
    port_file.write_text("# bench\n")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nutbridge", "-s", "--port-file", str(port_file), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=tree.path,
        env=env,
    )
    rows = [re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line) for line in done.stderr.splitlines()]
    top = [(int(m[2]), m[4]) for m in rows if m and len(m[3]) == 1]  # top-level imports: cumulative µs
    total = sum(us for us, _ in top) / 1000
    slowest = [f"{name} {us / 1000:.0f} ms" for us, name in sorted(top, reverse=True)[:4]]
    return total, slowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, RUNS)
    options = parser.parse_args()
    measured = trees(options)
    envs = {tree: tree.env(dict(os.environ), bytecode=not options.no_bytecode) for tree in measured}
    with simulator() as port, tempfile.TemporaryDirectory() as folder:
        port_file = Path(folder) / "solar.dev"
        print(f"nutbridge -s ({bytecode_note(options)}; {options.runs} runs each, alternated):")
        for label, args in (
            ("NUT version given", ["--source", f"tcp://127.0.0.1:{port}", "--nut-version", "2.8.0"]),
            ("NUT version from dummy-ups -V", ["--source", f"tcp://127.0.0.1:{port}"]),
        ):
            for tree in measured:
                once(args, port_file, tree, envs[tree])  # warm the page cache, as a second boot would be
            times: dict[Tree, list[float]] = {tree: [] for tree in measured}
            for _ in range(options.runs):
                for tree in measured:
                    times[tree].append(once(args, port_file, tree, envs[tree]))
            for tree in measured:
                median, best = statistics.median(times[tree]) * 1000, min(times[tree]) * 1000
                print(f"  {tree.label}, {label}: median {median:.0f} ms, min {best:.0f} ms")
        given = ["--source", f"tcp://127.0.0.1:{port}", "--nut-version", "2.8.0"]
        imports: dict[Tree, list[tuple[float, list[str]]]] = {tree: [] for tree in measured}
        for _ in range(IMPORT_RUNS):
            for tree in measured:
                imports[tree].append(import_ms(given, port_file, tree, envs[tree]))
        for tree in measured:
            total = statistics.median(ms for ms, _ in imports[tree])
            slowest = ", ".join(imports[tree][0][1])
            print(f"  {tree.label}: imports {total:.0f} ms (median of {IMPORT_RUNS}); slowest: {slowest}")


if __name__ == "__main__":
    main()
