"""Event-loop lag while the port file is rewritten, with fsync, at every poll: the file work on the loop
(as nutbridge 0.1 did) against the port-file sink, which runs it in a worker thread.

A probe task sleeps 2 ms again and again and records how late it wakes; meanwhile a poll every 0.1 s
hands a changed snapshot to the port file. The whole-second mtime rule is lifted here so that every poll
really writes. The folder is on the disk, not tmpfs (NUTBRIDGE_BENCH_DIR, default /var/tmp).
Usage: .venv/bin/python -m bench.loop_lag
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import MappingProxyType

from nutbridge.devices.tracer.nut import TABLE
from nutbridge.nut.driver import PortFileSink, file_values
from nutbridge.nut.portfile import PortFile
from nutbridge.nut.variables import setting_names
from nutbridge.nut.version import Dialect, NutVersion
from nutbridge.snapshot import Comms, Snapshot

POLL = 0.1
DURATION = 20.0
PROBE = 0.002


def snapshot(i: int) -> Snapshot:
    values = {v.name: f"{i % 100}.{i % 7}" for v in TABLE}
    return Snapshot(seq=i, time=time.time(), comms=Comms.OK, variables=MappingProxyType(values))


async def probe(lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(PROBE)
        lags.append(loop.time() - start - PROBE)


async def measure(write: Callable[[PortFileSink, Snapshot], Awaitable[None]], folder: Path) -> list[float]:
    path = folder / "solar.dev"
    path.write_text("# bench\n")
    pf = PortFile(path)
    pf.locate()
    sink = PortFileSink(pf, dialect=Dialect(NutVersion(2, 8, 0)), settings=setting_names(TABLE))
    lags: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(probe(lags, stop))
    end = time.monotonic() + DURATION
    i = 0
    while time.monotonic() < end:
        i += 1
        pf._last_mtime = -1  # lift the one-write-per-second rule: every poll writes
        await write(sink, snapshot(i))
        await asyncio.sleep(POLL)
    stop.set()
    await task
    return lags


async def on_the_loop(sink: PortFileSink, snap: Snapshot) -> None:
    sink._apply(file_values(snap, sink.dialect))  # blocking: read, fsync and rename in the loop's thread


async def in_the_sink(sink: PortFileSink, snap: Snapshot) -> None:
    await sink.update(snap)


def report(name: str, lags: list[float]) -> None:
    ms = sorted(lag * 1000 for lag in lags)
    p99 = ms[int(len(ms) * 0.99)]
    print(f"{name}: loop lag p50 {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms, max {ms[-1]:.2f} ms")


def main() -> None:
    base = Path(os.environ.get("NUTBRIDGE_BENCH_DIR", "/var/tmp"))
    with tempfile.TemporaryDirectory(dir=base) as folder:
        print(f"{DURATION:g} s, a write every {POLL:g} s, probe every {PROBE * 1000:g} ms, folder {folder}")
        report("file work on the loop (before)", asyncio.run(measure(on_the_loop, Path(folder))))
        report("port-file sink, worker thread (after)", asyncio.run(measure(in_the_sink, Path(folder))))


if __name__ == "__main__":
    main()
