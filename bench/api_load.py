"""Requests per second and p99 latency of the Solar Protocol v1 routes over 7 days of 2-minute rows; then a
polling daemon under the same 50-client load: how late its polls come, and its memory with the week cached.

The servers run in their own processes; the clients are aiohttp in this one, on loopback. Poll lateness is read
from the daemon's own data log: each poll appends a row stamped when it answered, one interval apart when on
time. Usage: .venv/bin/python -m bench.api_load
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.simproc import simulator
from nutbridge.datalog.dayfiles import read_day
from nutbridge.datalog.format import day_file
from nutbridge.datalog.writer import DataLog
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
        polling_under_load(Path(folder))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def polling_under_load(folder: Path, interval: float = 1.0, seconds: float = 20.0) -> None:
    """A daemon polling the simulator every ``interval`` while 50 clients ask for a week; lateness and RSS."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    port_file = folder / "solar.dev"
    port_file.write_text("")
    lag_file = folder / "loop-lag.json"  # not a day file: the API never serves it
    with simulator() as sim_port:  # in its own process, as a real controller would be
        source = f"tcp://127.0.0.1:{sim_port}"
        daemon = subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.lag_probe", str(lag_file)),
                *("--source", source, "--port-file", str(port_file)),
                *("--nut-version", "2.8.0", "--poll-interval", str(interval), "--data-dir", str(folder)),
                *("--flush-interval", "0"),  # lateness is read from the rows, each written as its poll answers
                *("--api-listen", f"127.0.0.1:{port}"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        rows, rates, rss = load(daemon, folder, port, seconds)
    stamps = [dt.datetime.fromisoformat(r[0]).timestamp() for r in rows]
    late = sorted((b - a - interval) * 1000 for a, b in itertools.pairwise(stamps))
    print(
        f"polling every {interval:g} s under 50 clients ({statistics.mean(rates):.0f} requests/s of duration=7): "
        f"{len(stamps)} polls, lateness p99 {late[int(len(late) * 0.99)]:.1f} ms, max {late[-1]:.1f} ms; "
        f"RSS {rss:.1f} MB with the week cached"
    )
    lags = sorted(json.loads(lag_file.read_text()))
    print(
        f"event-loop lag meanwhile (a 2 ms probe in the daemon's loop, {len(lags)} wake-ups): "
        f"p50 {lags[len(lags) // 2] * 1000:.1f} ms, p99 {lags[int(len(lags) * 0.99)] * 1000:.1f} ms, "
        f"max {lags[-1] * 1000:.1f} ms"
    )


def load(
    daemon: subprocess.Popen[bytes], folder: Path, port: int, seconds: float
) -> tuple[list[list[str]], list[float], float]:
    """Load the daemon's API for ``seconds``; the rows its polls logged meanwhile, the rates, its RSS."""
    try:
        time.sleep(2.0)
        before = len(read_day(day_file(folder, dt.date.today())))
        url = f"http://127.0.0.1:{port}/api/v1/chargecontroller.php?value=PV-voltage&duration=7"
        end = time.monotonic() + seconds
        rates = []
        while time.monotonic() < end:
            rates.append(asyncio.run(measure(url, 50))[0])
        rss = rss_mb(daemon.pid)
        rows = read_day(day_file(folder, dt.date.today()))[before:]
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
    return rows, rates, rss


if __name__ == "__main__":
    main()
