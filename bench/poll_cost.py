"""Modbus requests and CPU time per poll cycle (poll + NUT variables + port-file write).

The simulator runs in its own process at 600x speed, so every poll changes values and the port file is
really replaced each cycle; only nutbridge's CPU time is counted. Usage: .venv/bin/python -m bench.poll_cost
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.simproc import simulator
from nutbridge.monitor import Monitor
from nutbridge.nut.driver import PortFileSink
from nutbridge.nut.portfile import HandSettings, PortFile
from nutbridge.nut.variables import setting_names
from nutbridge.nut.version import Dialect, NutVersion
from nutbridge.sinks import SinkRunner
from nutbridge.sources.modbus_url import parse_modbus_url
from nutbridge.sources.tracer import TracerSource

CYCLES = 30
INTERVAL = 1.0  # a real schedule: one write per second is all dummy-once can see anyway


async def measure(port: int, folder: Path) -> None:
    port_file = folder / "solar.dev"
    port_file.write_text("# bench\nbattery.charge.low: 25\n")
    pf = PortFile(port_file)
    pf.locate()
    async with TracerSource(parse_modbus_url(f"tcp://127.0.0.1:{port}", "bench"), timeout=1.0) as source:
        settings = setting_names(source.table)
        runner = SinkRunner(PortFileSink(pf, dialect=Dialect(NutVersion(2, 8, 0)), settings=settings))
        monitor = Monitor(source, [runner], interval=INTERVAL, settings=HandSettings(pf, settings).get)
        task = asyncio.create_task(runner.run())

        async def cycle() -> None:
            snapshot = await monitor.poll()
            monitor.publish(snapshot)
            await runner.handled(snapshot.seq)

        await cycle()  # connect and read rated data: not part of a poll cycle
        await asyncio.sleep(1.0)
        cpu, requests, writes = [], [], 0
        for _ in range(CYCLES):
            start, before, mtime = time.monotonic(), source.requests, port_file.stat().st_mtime_ns
            t0 = time.process_time()  # all threads: the port-file write runs in a worker thread
            await cycle()
            cpu.append(time.process_time() - t0)
            requests.append(source.requests - before)
            writes += port_file.stat().st_mtime_ns != mtime
            await asyncio.sleep(max(0.0, INTERVAL - (time.monotonic() - start)))
        runner.close()
        await task
    print(f"Modbus requests per full poll: {statistics.mode(requests)} (start-up and reconnect: 5 more)")
    print(
        f"CPU per poll cycle ({CYCLES} cycles, {writes} port-file writes): "
        f"median {statistics.median(cpu) * 1000:.2f} ms, max {max(cpu) * 1000:.2f} ms"
    )


def main() -> None:
    with simulator("--speed", "600", "--time", "10:00") as port, tempfile.TemporaryDirectory() as folder:
        asyncio.run(measure(port, Path(folder)))


if __name__ == "__main__":
    main()
