"""Pub/sub fan-out: with 1,000 WebSocket subscribers on loopback (and one more that never reads), the time from
``update(snapshot)`` to the last subscriber receiving the poll's ``reading`` (p50, p99), and the hub's memory.

The hub runs in a process of its own (this module with ``--serve``: the sidecar's app from ``make_app`` with the
hub's routes, as the daemon serves them), so its resident memory (VmRSS) is the hub's and the sidecar's alone;
the subscribers are aiohttp clients in this process. The time runs from just before ``update`` in the hub's
process to the moment the last of the 1,000 readers here has the frame (CLOCK_MONOTONIC is one clock for both
processes), so it includes this process's own reading of 1,000 frames. Usage:
.venv/bin/python -m bench.pubsub_fanout [--subscribers 1000] [--polls 20]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import aiohttp

from nutbridge.config_sections import PubSubConfig
from nutbridge.model import ChargeStage, Reading
from nutbridge.server.app import Sidecar, make_app
from nutbridge.server.pubsub import PubSubHub
from nutbridge.snapshot import Comms, Snapshot

KEY = "bench-key-0123456789"
WARMUP = 2
GAP = 0.2  # seconds between polls, so that each poll's fan-out is measured alone
# a Tracer's usual variables, for a frame of the real size
VARIABLES = {
    "ups.status": "OL CHRG",
    "ups.mfr": "EPsolar",
    "ups.model": "Tracer-AN 4210AN",
    "ups.firmware": "0.1.2",
    "ups.serial": "TRC-0001",
    "ups.load": "12",
    "ups.realpower": "38.4",
    "ups.temperature": "31.2",
    "battery.charge": "71",
    "battery.charge.low": "25",
    "battery.charge.warning": "40",
    "battery.voltage": "13.20",
    "battery.voltage.nominal": "12",
    "battery.voltage.high": "14.40",
    "battery.voltage.low": "11.10",
    "battery.current": "2.31",
    "battery.temperature": "24.8",
    "battery.type": "sealed",
    "battery.capacity": "100",
    "battery.runtime": "52000",
    "input.voltage": "18.40",
    "input.current": "4.81",
    "input.realpower": "88.5",
    "output.voltage": "13.20",
    "output.current": "2.91",
    "device.mfr": "EPsolar",
    "device.model": "Tracer-AN 4210AN",
    "device.type": "ups",
    "driver.name": "dummy-ups",
    "experimental.charge.stage": "boost",
}


def snapshot(seq: int) -> Snapshot:
    """One poll of a Tracer in the sun, every field filled."""
    t = time.time()
    reading = Reading(
        time=t,
        battery_charge=71.0,
        battery_voltage=13.2,
        battery_current=2.31,
        battery_temperature=24.8,
        pv_voltage=18.4,
        pv_current=4.81,
        pv_power=88.5,
        load_voltage=13.2,
        load_current=2.91,
        load_power=38.4,
        controller_temperature=31.2,
        charge_stage=ChargeStage.BOOST,
        energy_generated_today=0.41,
        energy_consumed_today=0.22,
        energy_generated_total=512.3,
        energy_consumed_total=301.9,
        battery_voltage_max_today=14.1,
        battery_voltage_min_today=12.6,
    )
    return Snapshot(seq=seq, time=t, comms=Comms.OK, reading=reading, variables=MappingProxyType(VARIABLES))


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


# The hub's process: commands on stdin, answers on stdout


async def serve() -> None:
    raise_fd_limit()
    hub = PubSubHub(PubSubConfig(api_key=KEY, max_subscribers=100_000))
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    with tempfile.TemporaryDirectory() as folder:
        app = make_app(Path(folder))
        hub.routes(app)
        async with Sidecar(app, "127.0.0.1", 0) as sidecar:
            print(f"port {sidecar.port}", flush=True)
            while line := (await stdin.readline()).decode().split():
                if line[0] == "count":
                    subscribers = len(hub.info()["subscriptions"][0]["connections"]) if hub.subscribers else 0
                    print(f"count {subscribers} {hub.slow_closed}", flush=True)
                elif line[0] == "poll":
                    poll = snapshot(int(line[1]))
                    start = time.monotonic()
                    await hub.update(poll)
                    print(f"polled {start} {time.monotonic()}", flush=True)


# The subscribers' process


class Readers:
    """The receipt times of every frame, per subscriber, and an event set when all have the newest poll."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.times: list[list[float]] = [[] for _ in range(count)]
        self.done: dict[int, asyncio.Event] = {}
        self.reached: dict[int, int] = {}

    def expect(self, poll: int) -> asyncio.Event:
        self.reached[poll] = 0
        self.done[poll] = asyncio.Event()
        return self.done[poll]

    async def read(self, index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        times = self.times[index]
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                times.append(time.monotonic())
                poll = len(times) - 1
                self.reached[poll] += 1
                if self.reached[poll] == self.count:
                    self.done[poll].set()


def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def subscribe(session: aiohttp.ClientSession, url: str, name: str) -> aiohttp.ClientWebSocketResponse:
    headers = {"X-API-Key": KEY, "X-API-Client-Name": name}
    ws = await session.ws_connect(f"{url}/subscribe", headers=headers, max_msg_size=0, heartbeat=None)
    await ws.send_str('{"action":"subscribe","event":"reading"}')
    return ws


@dataclass
class Figures:
    subscribers: int
    polls: int
    latencies: list[float] = field(default_factory=list)  # seconds, update() → the last reader has it
    costs: list[float] = field(default_factory=list)  # seconds, update() itself
    rss: dict[str, float] = field(default_factory=dict)  # MB: idle, connected, polled
    subscribed: int = 0  # sockets subscribed to "reading" at the end
    slow_closed: int = 0


async def measure(figures: Figures, url: str, pid: int, ask: Callable[[str], Awaitable[list[str]]]) -> None:
    """Connect the subscribers, poll, and note the times and the hub's memory."""
    figures.rss["idle"] = rss_mb(pid)
    readers = Readers(figures.subscribers)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        slow = await subscribe(session, url, "never-reads")  # never read from: its socket buffers fill
        sockets: list[aiohttp.ClientWebSocketResponse] = []
        for first in range(0, figures.subscribers, 100):
            batch = range(first, min(first + 100, figures.subscribers))
            sockets += await asyncio.gather(*(subscribe(session, url, f"sub-{i}") for i in batch))
        tasks = [asyncio.create_task(readers.read(i, ws)) for i, ws in enumerate(sockets)]
        while int((await ask("count"))[1]) < figures.subscribers + 1:  # noqa: ASYNC110 - the hub's, in its process
            await asyncio.sleep(0.1)
        figures.rss["connected"] = rss_mb(pid)
        for poll in range(WARMUP + figures.polls):
            done = readers.expect(poll)
            _, start, end = await ask(f"poll {poll}")
            async with asyncio.timeout(30):
                await done.wait()
            if poll >= WARMUP:
                figures.latencies.append(max(times[poll] for times in readers.times) - float(start))
                figures.costs.append(float(end) - float(start))
            await asyncio.sleep(GAP)
        figures.rss["polled"] = rss_mb(pid)
        _, subscribed, slow_closed = await ask("count")
        figures.subscribed, figures.slow_closed = int(subscribed), int(slow_closed)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(slow.close(), *(ws.close() for ws in sockets))


def report(f: Figures) -> None:
    ms = [t * 1000 for t in f.latencies]
    print(f"{f.subscribers} subscribers + 1 that never reads, {f.polls} polls ({WARMUP} warm-up polls not counted)")
    print(
        f"update(snapshot) → last subscriber has it: p50 {statistics.median(ms):.1f} ms, "
        f"p99 {percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms (min {min(ms):.1f} ms)"
    )
    print(
        f"update() itself (queues {f.subscribers + 1} frames): p50 {statistics.median(f.costs) * 1e6:.0f} µs, "
        f"max {max(f.costs) * 1e6:.0f} µs"
    )
    state = "closed (1013)" if f.slow_closed else "still connected, its socket buffers absorbing the frames"
    print(f"the one that never reads: {state}; {f.subscribed} sockets subscribed at the end")
    idle, connected, polled = f.rss["idle"], f.rss["connected"], f.rss["polled"]
    per = (polled - idle) * 1024 / (f.subscribers + 1)
    print(
        f"hub process RSS: {idle:.1f} MB idle, {connected:.1f} MB with {f.subscribers + 1} subscribers, "
        f"{polled:.1f} MB after the polls (+{polled - idle:.1f} MB, {per:.0f} KB per subscriber)"
    )


async def bench(subscribers: int, polls: int) -> None:
    raise_fd_limit()
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.pubsub_fanout", "--serve", stdin=pipe, stdout=pipe
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    async def ask(command: str) -> list[str]:
        stdin.write(f"{command}\n".encode())
        await stdin.drain()
        return (await stdout.readline()).decode().split()

    figures = Figures(subscribers, polls)
    try:
        url = f"http://127.0.0.1:{(await stdout.readline()).decode().split()[1]}"
        await asyncio.sleep(0.5)  # settled
        await measure(figures, url, proc.pid, ask)
    finally:
        stdin.close()
        await proc.wait()
    report(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--polls", type=int, default=20)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    asyncio.run(serve() if args.serve else bench(args.subscribers, args.polls))


if __name__ == "__main__":
    main()
