"""Soak: every feature on at the fastest poll interval for ``--minutes``; memory and descriptors must stay flat.

Node A (measured) polls its simulator every 0.2 s with the data log, the API and dashboard, pub/sub, the line
protocol, MQTT to a real Mosquitto and the peer network (announcing every 10 s, electing every 10 s) with node
B, a second daemon on loopback. This process keeps 100 WebSocket subscribers on A, a steady HTTP load on its
routes (``--rps`` requests a second: status, health, metrics, readings as columns, the legacy PHP route, the
dashboard page), and a line-protocol client asking once a second. Every 10 s it samples A's resident memory
(VmRSS) and open descriptors (/proc/PID/fd); at the end it reports the slope of each (least squares, per hour)
and the polls that came more than one interval late, from the reading times in A's day file.
Usage: .venv/bin/python -m bench.soak [--minutes 30] [--rps 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.helpers import free_port

INTERVAL = 0.2  # MIN_POLL_INTERVAL
WARM_UP = 60.0  # seconds before the slopes start: subscribers connecting, caches filling
KEY = "soak-network-key-0123"
ROUTES = ["/api/status", "/health", "/metrics", "/api/readings?fields=PV%20power%20L&format=columns&step=60",
          "/api/v1/chargecontroller.php?value=PV-current", "/", "/stats"]  # fmt: skip


def node_config(folder: Path, api: int, peer: int, mac: str, *, lines: int | None, mqtt: int | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "solar.dev").write_text("battery.charge.low: 30\n")
    extra = f'[linesocket]\nlisten = "127.0.0.1:{lines}"\n' if lines else ""
    extra += f'[mqtt]\nurl = "mqtt://127.0.0.1:{mqtt}"\n' if mqtt else ""
    (folder / "n.toml").write_text(
        f'[source]\nkind = "simulator"\nstart = "12:00"\n[monitor]\npoll_interval = {INTERVAL}\n'
        f'[nut]\nport_file = "solar.dev"\nversion = "2.8.0"\n[datalog]\nfolder = "log"\n'
        f'[api]\nlisten = "127.0.0.1:{api}"\n[pubsub]\nenabled = true\n[node]\nname = "{folder.name}"\npvWatts = 50\n'
        f'[peers]\nnetwork_key = "{KEY}"\nmac = "{mac}"\npeers = ["127.0.0.1:{peer}"]\nannounce = true\n'
        'allow_addresses = ["127.0.0.0/8"]\n'
        f"announce_interval = 10\nelection = true\nelection_interval = 10\n{extra}"
    )
    (folder / "n.toml").chmod(0o600)
    return folder / "n.toml"


def sample(pid: int) -> tuple[float, int]:
    """(resident MB, open descriptors) of ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def slope_per_hour(times: list[float], values: list[float]) -> float:
    """Least-squares slope of ``values`` over ``times`` (seconds), per hour."""
    return statistics.linear_regression(times, values).slope * 3600 if len(times) > 1 else 0.0


async def load(api: int, lines: int, rps: float, stop: asyncio.Event, counts: dict[str, int]) -> None:
    """100 subscribers, the HTTP load and the line-protocol client, until ``stop``."""

    async def subscriber(session: aiohttp.ClientSession, n: int) -> None:
        while not stop.is_set():
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.ws_connect(f"http://127.0.0.1:{api}/subscribe?clientName=soak{n}") as ws:
                    await ws.send_str('{"action":"subscribe","event":"reading"}')
                    async for _ in ws:
                        counts["frames"] += 1
                        if stop.is_set():
                            break
            counts["reconnects"] += 1
            await asyncio.sleep(1)

    async def requests(session: aiohttp.ClientSession) -> None:
        for route in itertools.cycle(ROUTES):
            if stop.is_set():
                return
            started = time.monotonic()
            try:
                async with session.get(f"http://127.0.0.1:{api}{route}") as answer:
                    await answer.read()
                    counts["http_ok" if answer.status < 500 else "http_5xx"] += 1
            except (aiohttp.ClientError, OSError):
                counts["http_errors"] += 1
            await asyncio.sleep(max(0.0, 1 / rps - (time.monotonic() - started)))

    async def line_client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", lines)
        while not stop.is_set():
            writer.write(b"PowerNow\n")
            await reader.readline()
            counts["lines"] += 1
            await asyncio.sleep(1)
        writer.close()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:  # 102 at once
        tasks = [asyncio.create_task(subscriber(session, n)) for n in range(100)]
        tasks += [asyncio.create_task(requests(session)), asyncio.create_task(line_client())]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rps", type=float, default=20)
    args = ap.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    from tests.helpers.mqtt import Mosquitto

    root = Path(tempfile.mkdtemp(prefix="nutbridge-soak-"))
    api_a, api_b, lines = free_port(), free_port(), free_port()
    broker = Mosquitto(root, ["allow_anonymous true"])
    broker.start()
    mqtt_port = broker.port
    a = node_config(root / "a", api_a, api_b, "02:00:00:00:00:0a", lines=lines, mqtt=mqtt_port)
    b = node_config(root / "b", api_b, api_a, "02:00:00:00:00:0b", lines=None, mqtt=None)
    daemons = [subprocess.Popen([sys.executable, "-m", "nutbridge", "-c", str(c)], stdin=subprocess.PIPE,
                                stderr=(c.parent / "daemon.log").open("wb")) for c in (a, b)]  # fmt: skip
    counts = dict.fromkeys(("frames", "reconnects", "http_ok", "http_5xx", "http_errors", "lines"), 0)
    times: list[float] = []
    rss: list[float] = []
    fds: list[float] = []
    try:
        time.sleep(3)
        started_wall, started = time.time(), time.monotonic()

        async def soak() -> None:
            stop = asyncio.Event()
            loader = asyncio.create_task(load(api_a, lines, args.rps, stop, counts))
            while time.monotonic() - started < args.minutes * 60:
                mb, n = sample(daemons[0].pid)
                times.append(time.monotonic() - started)
                rss.append(mb)
                fds.append(n)
                print(f"{times[-1]:7.0f} s  RSS {mb:6.1f} MB  fds {n:4d}  {counts}", flush=True)
                await asyncio.sleep(10)
            stop.set()
            await loader

        asyncio.run(soak())
        ended_wall = time.time()
    finally:
        for daemon in daemons:
            daemon.terminate()
        for daemon in daemons:
            daemon.wait(timeout=30)
        broker.stop()
    report(root, args.minutes, counts, (started_wall, ended_wall), times=times, rss=rss, fds=fds)


def report(root: Path, minutes: float, counts: dict[str, int], window: tuple[float, float], *,
           times: list[float], rss: list[float], fds: list[float]) -> None:  # fmt: skip
    """The slopes, and the polls that came late, from the reading times in node A's day files."""
    started_wall, ended_wall = window
    stamps = []
    for path in sorted((root / "a" / "log").glob("*.csv")):
        for line in path.read_text().splitlines()[1:]:
            with contextlib.suppress(ValueError):
                stamps.append(dt.datetime.fromisoformat(line.split(",")[0]).timestamp())
    stamps = [t for t in stamps if started_wall <= t <= ended_wall]
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    late = [g - INTERVAL for g in gaps if g > 2 * INTERVAL]
    print(f"\n{minutes:g} min, a poll every {INTERVAL} s, {len(stamps)} polls logged, {counts}")
    warm = next((i for i, t in enumerate(times) if t >= WARM_UP), 0)  # the subscribers and caches are in by then
    print(f"RSS: {rss[warm]:.1f} MB after the first minute, {rss[-1]:.1f} MB at the end, max {max(rss):.1f} MB; "
          f"slope {slope_per_hour(times[warm:], rss[warm:]):+.2f} MB/hour after the first minute")  # fmt: skip
    print(f"descriptors: {fds[warm]:.0f} after the first minute, {fds[-1]:.0f} at the end, max {max(fds):.0f}; "
          f"slope {slope_per_hour(times[warm:], fds[warm:]):+.2f}/hour")  # fmt: skip
    print(f"polls more than one interval late: {len(late)}" + (f" (max {max(late) * 1000:.0f} ms)" if late else "")
          + f"; longest gap {max(gaps) * 1000:.0f} ms")  # fmt: skip
    print(f"logs: {root}/a/daemon.log, {root}/b/daemon.log")


if __name__ == "__main__":
    main()
