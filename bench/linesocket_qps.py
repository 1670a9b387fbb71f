"""Line-protocol queries per second on loopback: 50 clients, each pipelining 64 queries a write, and the same
50 asking one query per round trip, as a Hubitat driver does.

The server (nutbridge.feeds.linesocket, fed one snapshot) runs in its own process, so the clients' CPU is not
counted against it; the clients are asyncio in this one and count reply lines. Queries cycle through the
named ones and a NUT variable. Usage: .venv/bin/python -m bench.linesocket_qps
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from asyncio.subprocess import PIPE
from types import MappingProxyType

from nutbridge.config_sections import LineSocketConfig
from nutbridge.feeds.linesocket import LineSocket
from nutbridge.model import Reading
from nutbridge.snapshot import Comms, Snapshot

CLIENTS = 50
DEPTH = 64  # queries per write when pipelining
SECONDS = 5.0
QUERIES = (b"PowerNow", b"PowerToday", b"Status", b"UpTime", b"TimeStamp", b"battery.charge", b"GridV")


async def serve() -> None:
    """The server process: a LineSocket on an ephemeral loopback port, until stdin closes."""
    config = LineSocketConfig(listen=("127.0.0.1", 0), max_connections=1000)
    async with LineSocket(config) as ls:
        t = time.time()
        reading = Reading(time=t, pv_power=2984.0, energy_generated_today=12.3, energy_generated_total=4567.8)
        variables = {"battery.charge": "87", "input.voltage": "240.1", "input.frequency": "50.0"}
        await ls.update(Snapshot(seq=1, time=t, comms=Comms.OK, reading=reading, variables=MappingProxyType(variables)))
        print(ls.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def client(port: int, depth: int, end: float) -> int:
    """Replies received by one client sending ``depth`` queries a write until ``end``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    queries = itertools.cycle(QUERIES)
    done = 0
    try:
        while time.monotonic() < end:
            writer.write(b"".join(next(queries) + b"\n" for _ in range(depth)))
            pending = depth
            while pending:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionError("the server closed the connection")
                pending -= chunk.count(b"\n")
            done += depth
    finally:
        writer.close()
        await writer.wait_closed()
    return done


async def measure(port: int, depth: int) -> float:
    """Queries answered per second by CLIENTS clients at ``depth``."""
    end = time.monotonic() + SECONDS
    t0 = time.perf_counter()
    counts = await asyncio.gather(*(client(port, depth, end) for _ in range(CLIENTS)))
    return sum(counts) / (time.perf_counter() - t0)


async def main() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.linesocket_qps", "--serve", stdin=PIPE, stdout=PIPE
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        port = int(await proc.stdout.readline())
        pipelined = await measure(port, DEPTH)
        one_by_one = await measure(port, 1)
    finally:
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 10)
    print(f"line protocol on loopback, {CLIENTS} clients, {SECONDS:g} s each, server in its own process:")
    print(f"  pipelined ({DEPTH} queries a write): {pipelined:,.0f} queries/s")
    print(f"  one query per round trip:          {one_by_one:,.0f} queries/s")


if __name__ == "__main__":
    asyncio.run(serve() if "--serve" in sys.argv else main())
