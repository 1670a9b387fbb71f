"""Modbus requests and CPU time per poll cycle (poll + NUT variables + port-file write), with a breakdown.

The simulator runs in its own process at 600x speed, so every poll changes values and the port file is
really replaced each cycle; only nutbridge's CPU time is counted (all its threads: the port-file write runs
in a worker thread). The folder is on the disk (NUTBRIDGE_BENCH_DIR, default /var/tmp), not tmpfs.
Three passes of CYCLES polls, one per second: the poll alone; the poll plus the file work done in the loop's
own thread; the whole cycle as the daemon runs it (the port-file sink, in a worker thread).
Usage: .venv/bin/python -m bench.poll_cost
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.simproc import simulator
from nutbridge.devices.modbus import parse_modbus_url
from nutbridge.devices.tracer.nut import TABLE
from nutbridge.devices.tracer.source import TracerSource
from nutbridge.monitor import Monitor
from nutbridge.nut.driver import PortFileSink, file_values
from nutbridge.nut.portfile import HandSettings, PortFile
from nutbridge.nut.variables import charge_low, setting_names, view
from nutbridge.nut.version import Dialect, NutVersion
from nutbridge.sinks import SinkRunner

CYCLES = 30
INTERVAL = 1.0  # a real schedule: one write per second is all dummy-once can see anyway
PASSES = ("poll alone", "poll + file work in the loop thread", "whole cycle (port-file sink)")


async def measure(port: int, folder: Path, mode: str) -> tuple[list[float], list[int], int]:
    port_file = folder / "solar.dev"
    port_file.write_text("# bench\nbattery.charge.low: 25\n")
    pf = PortFile(port_file)
    pf.locate()
    async with TracerSource(parse_modbus_url(f"tcp://127.0.0.1:{port}", "bench"), timeout=1.0) as source:
        settings = setting_names(TABLE)
        sink = PortFileSink(pf, dialect=Dialect(NutVersion(2, 8, 0)), settings=settings)
        runner = SinkRunner(sink)
        by_hand = HandSettings(pf, settings).get
        monitor = Monitor(
            source,
            [runner],
            interval=INTERVAL,
            variables=view(TABLE, by_hand),
            charge_low=lambda: charge_low(by_hand()),
        )
        task = asyncio.create_task(runner.run())

        async def cycle() -> None:
            snapshot = await monitor.poll()
            if mode == PASSES[1]:
                sink._apply(file_values(snapshot, sink.dialect))
            elif mode == PASSES[2]:
                monitor.publish(snapshot)
                await runner.handled(snapshot.seq)

        await cycle()  # connect and read rated data: not part of a poll cycle
        await asyncio.sleep(1.0)
        cpu, requests, writes = [], [], 0
        for _ in range(CYCLES):
            start, before, mtime = time.monotonic(), source.requests, port_file.stat().st_mtime_ns
            t0 = time.process_time()
            await cycle()
            cpu.append(time.process_time() - t0)
            requests.append(source.requests - before)
            writes += port_file.stat().st_mtime_ns != mtime
            await asyncio.sleep(max(0.0, INTERVAL - (time.monotonic() - start)))
        runner.close()
        await task
    return cpu, requests, writes


def main() -> None:
    base = Path(os.environ.get("NUTBRIDGE_BENCH_DIR", "/var/tmp"))
    for mode in PASSES:  # a fresh simulator each pass: each starts at 10:00, in the sun
        with simulator("--speed", "600", "--time", "10:00") as port, tempfile.TemporaryDirectory(dir=base) as folder:
            cpu, requests, writes = asyncio.run(measure(port, Path(folder), mode))
        print(
            f"{mode}: CPU median {statistics.median(cpu) * 1000:.2f} ms, max {max(cpu) * 1000:.2f} ms "
            f"({CYCLES} cycles, {writes} port-file writes, {statistics.mode(requests)} Modbus requests each)"
        )


if __name__ == "__main__":
    main()
