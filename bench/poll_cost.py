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
from nutbridge.nut.portfile import PortFile, Write
from nutbridge.sources.modbus_url import parse_modbus_url
from nutbridge.sources.tracer import TracerSource

CYCLES = 30
INTERVAL = 1.0  # a real schedule: one write per second is all dummy-once can see anyway


async def measure(port: int, folder: Path) -> None:
    port_file = folder / "solar.dev"
    port_file.write_text("# bench\nbattery.charge.low: 25\n")
    pf = PortFile(port_file)
    pf.locate()
    sink = PortFileSink(pf)
    async with TracerSource(parse_modbus_url(f"tcp://127.0.0.1:{port}", "bench"), timeout=1.0) as source:
        monitor = Monitor(source, [sink], interval=INTERVAL)
        await monitor.once()  # connect and read rated data: not part of a poll cycle
        await asyncio.sleep(1.0)
        cpu, requests, writes = [], [], 0
        for _ in range(CYCLES):
            start, before = time.monotonic(), source.requests
            t0 = time.process_time()
            await monitor.tell(await monitor.poll())
            cpu.append(time.process_time() - t0)
            requests.append(source.requests - before)
            writes += sink.last_write is Write.WRITTEN
            await asyncio.sleep(max(0.0, INTERVAL - (time.monotonic() - start)))
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
