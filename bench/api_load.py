"""Requests per second and p99 latency of the Solar Protocol v1 routes over 7 days of 2-minute rows.

The server is `nutbridge --no-poll` in its own process; the clients are aiohttp in this one, on loopback,
one at a time and then 50 at once. Usage: .venv/bin/python -m bench.api_load
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from nutbridge.datalog import DataLog
from nutbridge.model import Reading

QUERIES = ("value=PV-voltage&duration=7", "day=7", "line=0")
DAYS = 7
STEP = 120  # seconds between rows, as Solar Protocol logs
SECONDS = 5.0  # per measurement


def fill(folder: Path) -> int:
    """Seven days of rows, as the data log writes them."""
    log = DataLog(folder)
    start = dt.datetime.combine(dt.date.today() - dt.timedelta(days=DAYS - 1), dt.time())
    rows = 0
    for i in range(DAYS * 86400 // STEP):
        t = start + dt.timedelta(seconds=i * STEP)
        if t > dt.datetime.now():
            break
        log.append(Reading(time=t.timestamp(), battery_charge=50 + i % 50, battery_voltage=12.5, pv_voltage=18.0,
                           pv_power=float(i % 200), load_power=15.0, battery_current=0.5))  # fmt: skip
        rows += 1
    return rows


async def measure(url: str, clients: int) -> tuple[float, float]:
    """(requests per second, p99 latency in ms) for ``clients`` concurrent loops over SECONDS."""
    latencies: list[float] = []
    end = time.monotonic() + SECONDS
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def loop() -> None:
            while time.monotonic() < end:
                t0 = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                latencies.append(time.perf_counter() - t0)

        start = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(clients)))
        elapsed = time.monotonic() - start
    latencies.sort()
    return len(latencies) / elapsed, latencies[int(len(latencies) * 0.99)] * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        rows = fill(Path(folder))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, "-m", "nutbridge", "--no-poll", "--data-dir", folder, "--api-listen", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.5)
            print(f"{rows} rows over {DAYS} days; server: nutbridge --no-poll; clients on loopback")
            for query in QUERIES:
                url = f"http://127.0.0.1:{port}/api/v1/chargecontroller.php?{query}"
                for clients in (1, 50):
                    rate, p99 = asyncio.run(measure(url, clients))
                    print(f"  {query:<30} {clients:>2} client(s): {rate:7.0f} requests/s, p99 {p99:6.1f} ms")
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
