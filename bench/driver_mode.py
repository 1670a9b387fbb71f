"""Driver mode beside port-file mode: start-up of ``nutbridge-driver``, CPU per poll cycle with the driver socket,
and the bytes each mode writes to the disk per poll.

(1) Start-up: from the exec of ``nutbridge-driver -a UPS -FF`` to the first DUMPDONE its socket answers, and to
the first dump that holds a poll (ups.status), reading a Tracer (the simulator, its own process) over Modbus
TCP; with the imports -X importtime counts. (2) CPU per poll cycle as bench/poll_cost.py counts it (poll, NUT
variables, the sink), with the DriverSocket as the sink and a client in another process reading every line it
sends, as upsd does: against a lenient simulator (it answers reads across the register map's gaps), gap-free (6
requests a poll, ``coalesce = false``) and coalesced (3, ``"auto"`` once its probe passed), over Modbus TCP and
over RTU on a socat pty pair, the four alternated ROUNDS times. (3) Bytes written: ``write_bytes`` of
/proc/<pid>/io over POLLS polls, for ``nutbridge-driver`` and for the daemon writing its port file (in
NUTBRIDGE_BENCH_DIR, default /var/tmp: on the disk, not tmpfs), both reading the simulator at 600x speed, so every
poll changes values.
Usage: .venv/bin/python -m bench.driver_mode [--startup-only | --cpu-only] [--against OLD_TREE] [--runs N]
[--no-bytecode] (needs no root and no NUT daemons: the state path is a temporary folder, NUT's environment
variables point there; the RTU line needs socat). The start-ups alternate between this tree and OLD_TREE when
given; bench/startup.py says what the bytecode options mean.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.simproc import serial_simulator, simulator
from bench.startup import Tree, add_arguments, bytecode_note, trees
from nutbridge.devices.modbus import parse_modbus_url
from nutbridge.devices.tracer.nut import TABLE
from nutbridge.devices.tracer.source import TracerSource
from nutbridge.monitor import Monitor
from nutbridge.nut.driver_socket import DriverSocket
from nutbridge.nut.variables import view
from nutbridge.sinks import SinkRunner

RUNS = 15  # start-ups of each tree (--runs)
IMPORT_RUNS = 5  # -X importtime runs (of each tree)
CYCLES = 30  # polls for the CPU figure, one per second
ROUNDS = 2  # of the four CPU figures, alternated: this VM's speed drifts by the hour
POLLS = 20  # polls for the bytes written, one per second
UPS = "UPS"
DRIVER = Path(sys.executable).parent / "nutbridge-driver"
READER = """\
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"DUMPALL\\n")
while s.recv(65536):
    pass
"""  # what upsd does with a driver's socket: ask for the dump, then read every broadcast


@contextmanager
def nut_folder(port: int) -> Iterator[tuple[Path, dict[str, str]]]:
    """A NUT configuration folder with the UPS's section (``driver = nutbridge``, the simulator as the port), and
    the environment that points NUT's paths (and so nutbridge-driver's) at it."""
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        (root / "state").mkdir()
        (root / "ups.conf").write_text(
            f"[{UPS}]\n  driver = nutbridge\n  port = tcp://127.0.0.1:{port}\n  pollinterval = 1\n"
        )
        yield root / "state", {**os.environ, "NUT_CONFPATH": str(root), "NUT_STATEPATH": str(root / "state")}


def dump(path: Path) -> bytes | None:
    """The socket's answer to DUMPALL up to DUMPDONE, or None while nothing listens."""
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return None
        sock.sendall(b"DUMPALL\n")
        answer = b""
        while b"DUMPDONE" not in answer:
            data = sock.recv(65536)
            if not data:
                return None
            answer += data
        return answer


def start_once(state: Path, env: dict[str, str], tree: Tree) -> tuple[float, float]:
    """Seconds from the exec to the first DUMPDONE, and to the first dump with a poll in it."""
    sock = state / f"nutbridge-{UPS}"
    start = time.perf_counter()
    argv = [str(DRIVER), "-a", UPS, "-FF", "-u", "root"]
    proc = subprocess.Popen(argv, env=env, cwd=tree.path, stderr=subprocess.DEVNULL)
    try:
        first = None
        while True:
            answer = dump(sock)
            if proc.poll() is not None:
                raise RuntimeError(f"nutbridge-driver exited with {proc.returncode}")
            if answer is None:
                time.sleep(0.001)
                continue
            first = first or time.perf_counter() - start
            if b"ups.status" in answer:
                return first, time.perf_counter() - start
            time.sleep(0.001)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def import_ms(state: Path, env: dict[str, str], tree: Tree) -> tuple[float, list[str]]:
    """nutbridge-driver's imports up to its first poll, from -X importtime: total and the slowest top levels."""
    code = f"import sys; sys.argv = ['nutbridge-driver', '-a', '{UPS}', '-FF', '-u', 'root']; " + (
        "from nutbridge.driver_cmd import entry; entry()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-c", code], env=env, cwd=tree.path, stderr=subprocess.PIPE, text=True
    )
    while b"ups.status" not in (dump(state / f"nutbridge-{UPS}") or b""):
        time.sleep(0.01)
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    rows = [re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line) for line in err.splitlines()]
    top = [(int(m[2]), m[4]) for m in rows if m and len(m[3]) == 1]
    slowest = [f"{name} {us / 1000:.0f} ms" for us, name in sorted(top, reverse=True)[:5]]
    return sum(us for us, _ in top) / 1000, slowest


def startup(state: Path, env: dict[str, str], args: argparse.Namespace) -> None:
    """(1): --runs start-ups of each tree, and IMPORT_RUNS under -X importtime (the median), alternated."""
    measured = trees(args)
    envs = {tree: tree.env(env, bytecode=not args.no_bytecode) for tree in measured}
    for tree in measured:
        start_once(state, envs[tree], tree)  # warm the page cache, as a second boot would be
    times: dict[Tree, list[tuple[float, float]]] = {tree: [] for tree in measured}
    for _ in range(args.runs):
        for tree in measured:
            times[tree].append(start_once(state, envs[tree], tree))
    imports: dict[Tree, list[tuple[float, list[str]]]] = {tree: [] for tree in measured}
    for _ in range(IMPORT_RUNS):
        for tree in measured:
            imports[tree].append(import_ms(state, envs[tree], tree))
    print(f"nutbridge-driver -FF start-up ({bytecode_note(args)}; {args.runs} runs each, alternated):")
    for tree in measured:
        first, polled = ([t[i] * 1000 for t in times[tree]] for i in (0, 1))
        total = statistics.median(ms for ms, _ in imports[tree])
        print(
            f"  {tree.label}: first DUMPDONE median {statistics.median(first):.0f} ms (min {min(first):.0f}), "
            f"first poll in the dump median {statistics.median(polled):.0f} ms (min {min(polled):.0f}); imports "
            f"{total:.0f} ms (-X importtime, median of {IMPORT_RUNS}); slowest: {', '.join(imports[tree][0][1])}"
        )


async def cycles(url: str, folder: Path, coalesce: bool | None = False) -> tuple[list[float], int]:
    """CPU seconds of each poll cycle with the driver socket as the sink, a reader connected; Modbus requests a
    poll."""
    async with TracerSource(parse_modbus_url(url, "bench"), timeout=1.0, coalesce=coalesce) as source:
        path = folder / f"nutbridge-{UPS}"
        async with DriverSocket(path, static={"driver.name": "nutbridge"}) as sink:
            runner = SinkRunner(sink)
            monitor = Monitor(source, [runner], interval=1.0, variables=view(TABLE, dict))
            task = asyncio.create_task(runner.run())
            reader = await asyncio.create_subprocess_exec(sys.executable, "-c", READER, str(path))

            async def cycle() -> None:
                snapshot = await monitor.poll()
                monitor.publish(snapshot)
                await runner.handled(snapshot.seq)

            await cycle()  # connect, read rated data and probe: not part of a poll cycle
            assert source.connected, f"{source} did not answer"
            await asyncio.sleep(1.0)
            cpu, before = [], source.requests
            for _ in range(CYCLES):
                start = time.monotonic()
                t0 = time.process_time()
                await cycle()
                cpu.append(time.process_time() - t0)
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - start)))
            reader.terminate()
            await reader.wait()
            runner.close()
            await task
    return cpu, (source.requests - before) // CYCLES


def cpu_figures() -> None:
    """Part 2: the median CPU per cycle, gap-free and coalesced, over TCP and RTU, the four alternated."""
    runs: dict[tuple[str, str], list[float]] = {}
    requests: dict[str, int] = {}
    with (
        simulator("--speed", "600", "--time", "10:00", "--lenient") as port,
        serial_simulator("--speed", "600", "--time", "10:00", "--lenient") as tty,
        tempfile.TemporaryDirectory() as folder,
    ):
        links = {"Modbus TCP": f"tcp://127.0.0.1:{port}", "RTU (socat pty)": f"rtu://{tty}?baudrate=115200"}
        for _ in range(ROUNDS):
            for link, url in links.items():
                for reads, coalesce in (("gap-free", False), ("coalesced", None)):
                    cpu, requests[reads] = asyncio.run(cycles(url, Path(folder), coalesce))
                    runs.setdefault((link, reads), []).append(statistics.median(cpu) * 1000)
    for (link, reads), medians in runs.items():
        shown = ", ".join(f"{m:.2f}" for m in medians)
        print(f"driver socket, whole cycle, {link}, {reads} ({requests[reads]} requests): CPU median {shown} ms "
              f"({ROUNDS} rounds of {CYCLES} cycles, a reader connected)")  # fmt: skip


def written(pid: int) -> int:
    """The bytes a process has caused to be written to storage (/proc/<pid>/io)."""
    text = Path(f"/proc/{pid}/io").read_text()
    return int(re.search(r"^write_bytes: (\d+)", text, re.M)[1])  # type: ignore[index]  # always there on Linux


def bytes_per_poll(argv: list[str], env: dict[str, str], ready: Path, reader: Path | None = None) -> float:
    """``argv`` running POLLS seconds (one poll a second) once ``ready`` exists: its write_bytes per poll."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = None
    try:
        while not ready.exists():
            time.sleep(0.01)
        if reader is not None:
            client = subprocess.Popen([sys.executable, "-c", READER, str(reader)])
        time.sleep(2.0)  # the first poll and its start-up writes are behind us
        before = written(proc.pid)
        time.sleep(POLLS)
        return (written(proc.pid) - before) / POLLS
    finally:
        if client is not None:
            client.terminate()
            client.wait()
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--startup-only", action="store_true", help="only (1), the start-up")
    parser.add_argument("--cpu-only", action="store_true", help="only (2), the CPU per poll cycle")
    add_arguments(parser, RUNS)
    args = parser.parse_args()
    if args.cpu_only:
        cpu_figures()
        return
    with simulator("--speed", "600", "--time", "10:00") as port, nut_folder(port) as (state, env):
        startup(state, env, args)
        if args.startup_only:
            return
        cpu_figures()
        driver = bytes_per_poll(
            [str(DRIVER), "-a", UPS, "-FF", "-u", "root"],
            env,
            state / f"nutbridge-{UPS}.pid",
            state / f"nutbridge-{UPS}",
        )
        base = Path(os.environ.get("NUTBRIDGE_BENCH_DIR", "/var/tmp"))
        with tempfile.TemporaryDirectory(dir=base) as folder:
            port_file = Path(folder) / "solar.dev"
            port_file.write_text("# bench\n")
            argv = [sys.executable, "-m", "nutbridge", "--source", f"tcp://127.0.0.1:{port}"]
            argv += ["--port-file", str(port_file), "--nut-version", "2.8.0", "--poll-interval", "1"]
            portfile = bytes_per_poll(argv, env, port_file)
        print(f"bytes written per poll ({POLLS} polls): driver mode {driver:.0f}, port-file mode {portfile:.0f}")


if __name__ == "__main__":
    main()
