"""The dashboard in Debian's Chromium: bytes of the first load, time to the first plot, daemon CPU per dashboard.

A daemon on the simulator serves a data log of 7 days of simulated history at the default poll interval (8,640
rows a day, today's file whole up to midnight: the worst case of the day, whatever the hour). Then:
- first load: a new browser context each time (empty cache); every HTTP response's encoded size (what crossed
  the wire, gzip included) is summed from Chromium's network events until both 7-day plots are drawn; a reload
  in the same context shows what the browser cache saves;
- time to the first plot: the page's ``nutbridge:first-plot`` mark (after uPlot drew today's power), from
  navigation start;
- CPU per dashboard: the daemon's user+system time (/proc/PID/stat) over ``--seconds`` with no page open, then
  with ``--dashboards`` pages open and live, at ``--poll-interval``.
Usage: .venv/bin/python -m bench.dashboard_cost [--loads 10] [--dashboards 10] [--seconds 60] [--poll-interval 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

from nutbridge.simulator.history import write_history
from tests.helpers import free_port

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip
DRAWN = "!!document.querySelector('#week-battery .uplot')"  # the last of the four plots


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(page: Page, expression: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        page.wait_for_timeout(20)


def load(browser: Browser, url: str) -> tuple[int, int, float, dict[str, int]]:
    """One cold load and one reload: (bytes cold, bytes warm, ms to the first plot, bytes by path cold, summed
    over the requests of each path)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    sizes: dict[str, int] = {}
    urls: dict[str, str] = {}
    cdp.on("Network.requestWillBeSent", lambda e: urls.__setitem__(e["requestId"], e["request"]["url"]))
    cdp.on("Network.loadingFinished", lambda e: sizes.__setitem__(e["requestId"], int(e["encodedDataLength"])))
    page.goto(url)
    wait_for(page, f"() => {DRAWN}")
    first_plot = page.evaluate("performance.getEntriesByName('nutbridge:first-plot')[0].startTime")
    cold = sum(sizes.values())
    by_path: dict[str, int] = {}
    for request, size in sizes.items():
        path = urls.get(request, request).split("?")[0].removeprefix(url.rstrip("/")) or "/"
        by_path[path] = by_path.get(path, 0) + size
    sizes.clear()
    page.reload()
    wait_for(page, f"() => {DRAWN}")
    warm = sum(sizes.values())
    context.close()
    return cold, warm, float(first_plot), by_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loads", type=int, default=10)
    ap.add_argument("--dashboards", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--poll-interval", type=float, default=1.0)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nutbridge-dashboard-bench-"))
    midnight = dt.datetime.combine(dt.date.today() + dt.timedelta(days=1), dt.time()).timestamp()
    rows = write_history(folder / "log", interval=10.0, now=midnight - 1)
    port = free_port()
    (folder / "solar.dev").write_text("")
    (folder / "n.toml").write_text(
        f'[source]\nkind = "simulator"\nstart = "12:00"\n[monitor]\npoll_interval = {args.poll_interval}\n'
        f'[nut]\nport_file = "solar.dev"\nversion = "2.8.0"\n[datalog]\nfolder = "log"\n'
        f'[api]\nlisten = "127.0.0.1:{port}"\n[pubsub]\nenabled = true\n'
    )
    daemon = subprocess.Popen([sys.executable, "-m", "nutbridge", "-c", str(folder / "n.toml")],
                              stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "api/status", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            before = cpu_seconds(daemon.pid)
            results = [load(browser, url) for _ in range(args.loads)]
            per_load = (cpu_seconds(daemon.pid) - before) / args.loads / 2  # a cold load and a reload each
            cold = [r[0] for r in results]
            print(f"data log: 7 days of {rows} rows (today's plot: every row)")
            print(
                f"first load: median {statistics.median(cold) / 1024:.1f} KiB on the wire (gzip), "
                f"max {max(cold) / 1024:.1f} KiB; reload: {statistics.median(r[1] for r in results) / 1024:.1f} KiB"
            )
            for path, size in sorted(results[-1][3].items(), key=lambda kv: -kv[1]):
                print(f"  {size / 1024:7.1f} KiB  {path}")
            plots = sorted(r[2] for r in results)
            print(
                f"first plot drawn: median {statistics.median(plots):.0f} ms, max {plots[-1]:.0f} ms after navigation"
            )
            print(
                f"daemon CPU per page load (today's {rows} rows as columns, gzipped, and the 7 days): "
                f"{per_load * 1000:.0f} ms"
            )
            cpu = measure_cpu(browser, daemon.pid, url, args)
            print(cpu)
            browser.close()
    finally:
        daemon.terminate()
        daemon.communicate(timeout=15)


def measure_cpu(browser: Browser, pid: int, url: str, args: Any) -> str:
    """The daemon's CPU with no dashboard, then with ``args.dashboards`` of them live."""

    def over(seconds: float) -> float:
        before = cpu_seconds(pid)
        time.sleep(seconds)
        return (cpu_seconds(pid) - before) / seconds

    idle = over(args.seconds)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pages = []
    for _ in range(args.dashboards):
        page = context.new_page()
        page.goto(url)
        wait_for(page, f"() => document.body.dataset.feed === 'live' && {DRAWN}")
        pages.append(page)
    time.sleep(2 * args.poll_interval)  # the loads are over
    busy = over(args.seconds)
    live = sum(page.evaluate("document.body.dataset.feed === 'live'") for page in pages)
    context.close()
    per = (busy - idle) / args.dashboards
    polls = args.seconds / args.poll_interval
    return (f"daemon CPU at a poll every {args.poll_interval:g} s: {idle * 100:.2f}% of a core with no dashboard, "
            f"{busy * 100:.2f}% with {args.dashboards} ({live} live): {per * 100:.3f}% per dashboard, "
            f"{per * args.seconds / polls * 1e6:.0f} µs per dashboard per poll")  # fmt: skip


if __name__ == "__main__":
    main()
