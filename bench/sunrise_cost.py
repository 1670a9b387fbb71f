"""What "will the battery last until sunrise?" costs.

- per poll: the NUT view of a Tracer reading with and without the outlook (Forecaster.update, the reserve's
  with_reserve and the three experimental.* rows), in one loop of POLLS readings each; the difference is the
  extra CPU a poll pays (process_time, the median of ROUNDS rounds);
- at start (and once a day): the scan of the data log (datalog/sunrise_scan.scan) in a folder of a year of day
  files, the last 8 of them simulated days at the given poll interval (nutbridge.simulator.history), the rest
  links to one of them (the scan lists them all and reads only the last 8); CPU, wall time and the peak RSS of a
  fresh process that does one scan.
The files go to NUTBRIDGE_BENCH_DIR (default /var/tmp), on the disk.
Usage: .venv/bin/python -m bench.sunrise_cost [interval seconds, default 10]
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nutbridge.datalog.format import day_file
from nutbridge.devices.tracer.nut import TABLE
from nutbridge.model import DeviceInfo, Reading
from nutbridge.nut.variables import evaluate
from nutbridge.outlook import Forecaster, capacity_wh
from nutbridge.power import power_state, with_reserve
from nutbridge.simulator.history import write_history
from nutbridge.sunrise import Estimate, History

POLLS = 5000
ROUNDS = 7
INFO = DeviceInfo(mfr="EPEver", model="Tracer", battery_capacity=100.0, battery_voltage_nominal=12.0)


def readings() -> list[Reading]:
    base = time.time()
    return [Reading(time=base + 10 * i, battery_charge=60.0, battery_voltage=12.3, battery_current=-1.3 - i % 7 / 10,
                    pv_power=0.0, load_power=15.0 + i % 5) for i in range(POLLS)]  # fmt: skip


def per_poll(with_outlook: bool, rs: list[Reading]) -> float:
    """CPU seconds for POLLS polls' power state and NUT view."""
    history = History(estimate=Estimate(time_of_day=6 * 3600.0, days=7, offset=0), peak=150.0)
    forecaster = Forecaster(history, lambda info: capacity_wh(info, info.battery_capacity, 12.0))
    previous = None
    t0 = time.process_time()
    for r in rs:
        outlook = forecaster.update(r, INFO) if with_outlook else None
        state = power_state(r, charge_low=20.0, previous=previous)
        if with_outlook:
            state = with_reserve(state, previous, None if outlook is None else outlook.charge, 30.0)
        evaluate(TABLE, r, INFO, {}, state, outlook=outlook)
        previous = state
    return time.process_time() - t0


def year_of_days(folder: Path, interval: float) -> None:
    """365 day files up to today: the last 8 simulated, the others links to the oldest of those."""
    write_history(folder, days=8, interval=interval)
    today = dt.date.today()
    model = day_file(folder, today - dt.timedelta(days=7))
    for back in range(8, 365):
        os.link(model, day_file(folder, today - dt.timedelta(days=back)))


SCAN = """
import gc, resource, sys, time
from pathlib import Path
from nutbridge.datalog.sunrise_scan import described, scan
from nutbridge.sunrise import standard_offset
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) / 1024
before, resident = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rss()
t0, w0 = time.process_time(), time.monotonic()
history = scan(Path(sys.argv[1]), 7, time.time(), standard_offset())
cpu, wall = time.process_time() - t0, time.monotonic() - w0
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
gc.collect()
print(f"{cpu:.3f} {wall:.3f} {(after - before) / 1024:.1f} {rss() - resident:.1f} {described(history, 7)}")
"""


def main() -> None:
    interval = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    rs = readings()
    plain = [per_poll(False, rs) for _ in range(ROUNDS)]
    ahead = [per_poll(True, rs) for _ in range(ROUNDS)]
    a, b = statistics.median(plain) / POLLS * 1e6, statistics.median(ahead) / POLLS * 1e6
    print(f"per poll (power state + NUT view): {a:.1f} µs without the outlook, {b:.1f} µs with it: +{b - a:.1f} µs")
    base = Path(os.environ.get("NUTBRIDGE_BENCH_DIR", "/var/tmp"))
    with tempfile.TemporaryDirectory(dir=base) as folder:
        year_of_days(Path(folder), interval)
        rows = len(day_file(Path(folder), dt.date.today() - dt.timedelta(days=1)).read_text().splitlines()) - 1
        runs = []
        for _ in range(3):
            out = subprocess.run([sys.executable, "-c", SCAN, folder], capture_output=True, text=True, check=True)
            runs.append(out.stdout.split(maxsplit=4))
        cpu = statistics.median(float(r[0]) for r in runs)
        wall = statistics.median(float(r[1]) for r in runs)
        peak = statistics.median(float(r[2]) for r in runs)
        kept = statistics.median(float(r[3]) for r in runs)
        said = runs[0][4].strip()
        print(f"scan of a year of day files ({rows} rows a day, {interval:g} s apart; 8 read): CPU {cpu:.3f} s, "
              f"wall {wall:.3f} s, peak RSS +{peak:.1f} MiB, RSS after it +{kept:.1f} MiB (median of 3 fresh "
              f"processes); {said}")  # fmt: skip
    print(f"(bench process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
