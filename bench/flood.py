"""A connection flood on loopback while the daemon polls: how late do polls get?

The daemon (its own process, on the simulator, a poll every ``--interval`` s, the data log writing each row at
once, the line protocol on) is measured for ``--seconds`` quietly, then for as long again while this process
holds ``--idle`` connections that never send a request, ``--trickle`` that send a request head a byte at a
time (slowloris), opens and closes ``--churn`` connections a second that each ask for /api/status, and holds
``--lines`` line-protocol connections. Lateness is each poll's gap to the one before, minus the interval,
from the reading times in the day file. Usage:
.venv/bin/python -m bench.flood [--interval 0.5] [--seconds 30] [--idle 3000] [--trickle 1000] [--churn 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from nutbridge.datalog.format import day_file
from tests.helpers import free_port


def lateness(log: Path, since: float, until: float, interval: float) -> list[float]:
    """Seconds each poll between ``since`` and ``until`` came after its due time (gap minus interval)."""
    times = []
    for line in log.read_text().splitlines()[1:]:
        with contextlib.suppress(ValueError):
            times.append(dt.datetime.fromisoformat(line.split(",")[0]).timestamp())
    window = [t for t in times if since <= t <= until]
    return [b - a - interval for a, b in itertools.pairwise(window)]


def summary(late: list[float]) -> str:
    if not late:
        return "no polls"
    ordered = sorted(late)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    ms = {name: f"{value * 1000:.1f} ms" for name, value in (("p50", statistics.median(late)), ("p99", p99),
                                                             ("max", ordered[-1]))}  # fmt: skip
    return f"{len(late) + 1} polls, late p50 {ms['p50']}, p99 {ms['p99']}, max {ms['max']}"


async def flood(api: int, lines: int, args: argparse.Namespace, stop: asyncio.Event) -> dict[str, int]:
    counts = {"idle": 0, "trickle": 0, "churn_ok": 0, "churn_refused": 0, "lines": 0, "errors": 0}
    held: list[asyncio.StreamWriter] = []

    async def hold(port: int, kind: str, first: bytes = b"") -> None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            counts["errors"] += 1
            return
        held.append(writer)
        counts[kind] += 1
        writer.write(first)
        if kind == "trickle":
            with contextlib.suppress(OSError):
                while not stop.is_set():
                    writer.write(b"X")
                    await writer.drain()
                    await asyncio.sleep(1)

    async def churn() -> None:
        while not stop.is_set():
            started = time.monotonic()
            for _ in range(args.churn):
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", api)
                    writer.write(b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    head = await asyncio.wait_for(reader.read(12), 5)
                    counts["churn_ok" if head.endswith(b"200") else "churn_refused"] += 1
                    writer.close()
                except (OSError, TimeoutError):
                    counts["errors"] += 1
            await asyncio.sleep(max(0.0, 1 - (time.monotonic() - started)))

    tasks = [asyncio.create_task(hold(api, "idle")) for _ in range(args.idle)]
    tasks += [asyncio.create_task(hold(api, "trickle", b"GET / HTTP/1.1\r\n")) for _ in range(args.trickle)]
    tasks += [asyncio.create_task(hold(lines, "lines")) for _ in range(args.lines)]
    tasks.append(asyncio.create_task(churn()))
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for writer in held:
        writer.close()
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--idle", type=int, default=3000)
    ap.add_argument("--trickle", type=int, default=1000)
    ap.add_argument("--churn", type=int, default=200, help="connections opened and closed per second")
    ap.add_argument("--lines", type=int, default=100, help="line-protocol connections held")
    args = ap.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    folder = Path(tempfile.mkdtemp(prefix="nutbridge-flood-"))
    api, lines = free_port(), free_port()
    (folder / "solar.dev").write_text("")
    (folder / "n.toml").write_text(
        f'[source]\nkind = "simulator"\nstart = "12:00"\n[monitor]\npoll_interval = {args.interval}\n'
        f'[nut]\nport_file = "solar.dev"\nversion = "2.8.0"\n[datalog]\nfolder = "log"\nflush_interval = 0\n'
        f'[api]\nlisten = "127.0.0.1:{api}"\n[linesocket]\nlisten = "127.0.0.1:{lines}"\n'
    )
    daemon = subprocess.Popen([sys.executable, "-m", "nutbridge", "-c", str(folder / "n.toml")],
                              stdin=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        for _ in range(300):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{api}/api/status", timeout=1).close()
                break
            time.sleep(0.1)
        log = day_file(folder / "log", dt.date.today())
        quiet_from = time.time()
        time.sleep(args.seconds)
        flood_from = time.time()

        async def flooded() -> dict[str, int]:
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(args.seconds, stop.set)
            return await flood(api, lines, args, stop)

        counts = asyncio.run(flooded())
        flood_to = time.time()
        time.sleep(2 * args.interval)
        with urllib.request.urlopen(f"http://127.0.0.1:{api}/stats", timeout=5) as answer:
            stats = json.load(answer)
        print(f"poll every {args.interval:g} s; {args.seconds:g} s quiet, then {args.seconds:g} s flooded")
        print(f"quiet:   {summary(lateness(log, quiet_from, flood_from, args.interval))}")
        print(f"flooded: {summary(lateness(log, flood_from, flood_to, args.interval))}")
        print(f"flood: {counts}; daemon's /stats afterwards: polls {stats['polls']}, failures {stats['failures']}")
    finally:
        daemon.terminate()
        _, err = daemon.communicate(timeout=30)
        refusals = [line for line in err.decode().splitlines() if "refusing more" in line or "again; refused" in line]
        print("daemon said: " + (" | ".join(refusals) or "(nothing about the flood)"))


if __name__ == "__main__":
    main()
