"""What a day of the data log costs the sidecar to keep in memory, and to bring up to date after a flush.

A whole day at the given poll interval (the simulator's history, as the data log writes it) is appended to a
file in batches of one flush window each (``--flush-interval``, the data log's default 300 s); after each batch
the day cache serves the file. Reported: the bytes a row takes once parsed (tracemalloc, the cache's own
objects), then and as whole-file parsing left it (fresh strings in lists, as before the cache shared cells), and
the time to serve the file after a flush at the end of the day: read from where it ended, against a fresh read
of the whole file.

Usage: .venv/bin/python -m bench.daycache_memory [--poll 1] [--flush-interval 300]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from nutbridge.config_sections import DEFAULT_FLUSH_INTERVAL
from nutbridge.datalog.dayfiles import day_files, read_day
from nutbridge.datalog.reader import DayCache
from nutbridge.simulator.history import write_history

SAMPLES = 20  # flushes timed at the end of the day


def traced(build: object) -> tuple[object, int]:
    """What ``build()`` returns and the bytes it still holds."""
    gc.collect()
    tracemalloc.start()
    kept = build()  # type: ignore[operator]
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return kept, held


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.daycache_memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--poll", type=float, default=1.0, help="seconds between rows (default 1)")
    p.add_argument("--flush-interval", type=float, default=DEFAULT_FLUSH_INTERVAL, help="seconds per batch")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="nutbridge-daycache-") as tmp:
        source, folder = Path(tmp) / "source", Path(tmp) / "data"
        write_history(source, days=2, interval=args.poll)
        day = day_files(source)[0]  # yesterday's: a whole day
        lines = day.read_bytes().splitlines(keepends=True)
        rows = len(lines) - 1
        print(f"a day at a row every {args.poll:g} s: {rows:,} rows, {day.stat().st_size / 1e6:.1f} MB of CSV")

        _, as_lists = traced(lambda: read_day(day))
        cache = DayCache(source)
        _, as_cached = traced(lambda: cache.rows(day.name))
        print(f"parsed: {as_cached / rows:.0f} bytes a row in the day cache ({as_cached / 1e6:.1f} MB a day); "
              f"{as_lists / rows:.0f} as lists of fresh strings ({as_lists / 1e6:.1f} MB)")  # fmt: skip

        folder.mkdir()
        path = folder / day.name
        batch = max(1, round(args.flush_interval / args.poll))
        growing = DayCache(folder)
        grown_ms: list[float] = []
        fresh_ms: list[float] = []
        with path.open("ab") as f:
            f.write(lines[0])
            for start in range(1, len(lines), batch):
                f.write(b"".join(lines[start : start + batch]))
                f.flush()
                last = start + batch >= len(lines) - SAMPLES * batch
                t0 = time.perf_counter()
                served = growing.rows(day.name)
                t1 = time.perf_counter()
                if last:
                    t2 = time.perf_counter()
                    fresh = DayCache(folder).rows(day.name)  # as every read was before: the whole file parsed
                    fresh_ms.append((time.perf_counter() - t2) * 1e3)
                    grown_ms.append((t1 - t0) * 1e3)
                    assert served == fresh
        print(f"serving the day after a flush of {batch} rows, at the end of the day (median of {len(grown_ms)}): "
              f"{statistics.median(grown_ms):.2f} ms read from where it ended; "
              f"{statistics.median(fresh_ms):.0f} ms read whole")  # fmt: skip


if __name__ == "__main__":
    main()
