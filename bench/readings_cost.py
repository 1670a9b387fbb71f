"""What /api/readings?days=31&format=columns costs: 31 days of 10 s rows (nutbridge.simulator.history), a
``nutbridge --no-poll`` server in its own process, clients on loopback.

- one request at a time, each with another ``fields`` (so no answer is the one before): seconds per request,
  and the server's CPU seconds per request (/proc/PID/stat);
- CLIENTS clients at once for SECONDS: answers by status, the server's CPU use and peak RSS, and how late
  /health answers meanwhile (the event loop's share).
Usage: .venv/bin/python -m bench.readings_cost [clients]
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from nutbridge.datalog.format import HEADER
from nutbridge.simulator.history import write_history

COLUMNS = list(HEADER[1:])
FIELDS = [",".join(c) for n in (1, 2, 3) for c in itertools.combinations(COLUMNS, n)]
SECONDS = 20.0


def cpu(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(url: str, pid: int, clients: int) -> None:
    fields = itertools.cycle(FIELDS)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for _ in range(100):
            try:
                async with http.get(f"{url}/api/openapi.json") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        for n in range(5):
            c0, w0 = cpu(pid), time.perf_counter()
            async with http.get(
                f"{url}/api/readings", params={"days": "31", "format": "columns", "fields": next(fields)}
            ) as r:
                body = await r.read()
            print(
                f"  one at a time #{n + 1}: {r.status}, {len(body) / 1e6:.1f} MB, "
                f"{time.perf_counter() - w0:.2f} s, server CPU {cpu(pid) - c0:.2f} s"
            )
        statuses: collections.Counter[int] = collections.Counter()
        health: list[float] = []
        end = time.monotonic() + SECONDS

        async def client() -> None:
            while time.monotonic() < end:
                q = {"days": "31", "format": "columns", "fields": next(fields)}
                async with http.get(f"{url}/api/readings", params=q) as r:
                    await r.read()
                    statuses[r.status] += 1

        async def probe() -> None:
            while time.monotonic() < end:
                w = time.perf_counter()
                async with http.get(f"{url}/health") as r:
                    await r.read()
                health.append(time.perf_counter() - w)
                await asyncio.sleep(0.2)

        c0, w0 = cpu(pid), time.monotonic()
        await asyncio.gather(probe(), *(client() for _ in range(clients)))
        used, wall = cpu(pid) - c0, time.monotonic() - w0
        health.sort()
        print(
            f"  {clients} clients for {wall:.0f} s: answers {dict(statuses)}, server CPU {used / wall:.0%} "
            f"of one core, peak RSS {rss_mb(pid):.0f} MB; /health p50 "
            f"{health[len(health) // 2] * 1000:.0f} ms, max {health[-1] * 1000:.0f} ms"
        )


def main(clients: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.monotonic()
        write_history(Path(folder), days=31, interval=10.0)
        files = sorted(Path(folder).glob("tracerData*.csv"))
        size = sum(p.stat().st_size for p in files)
        print(f"{len(files)} day files, {size / 1e6:.0f} MB, written in {time.monotonic() - t0:.0f} s")
        with socket.socket() as probe_socket:
            probe_socket.bind(("127.0.0.1", 0))
            port = probe_socket.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, "-m", "nutbridge", "--no-poll", "--data-dir", folder, "--api-listen", f"127.0.0.1:{port}"],
            stderr=subprocess.DEVNULL,
        )
        try:
            asyncio.run(measure(f"http://127.0.0.1:{port}", server.pid, clients))
        finally:
            server.terminate()
            t = time.monotonic()
            server.wait(timeout=300)
            print(f"  the server stopped {time.monotonic() - t:.1f} s after SIGTERM")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
