"""Bytes a default install writes to its SD card per day, at a 5 s poll: measured where they reach the disk.

As root: an ext4 filesystem in a file (made by this bench, ``-E lazy_itable_init=0,lazy_journal_init=0`` so no
background initialisation is counted), on a loop device, mounted in a temp folder with Raspberry Pi OS's
``noatime``. The real daemon runs on the simulator (its own process, as a controller is) with a config like a
Solar Protocol node's: the port file, the data log, the API with ``[peers] network_key`` (so the device list is
kept), its log lines (stderr) in a file on that filesystem; today's day file is there already, as on a node
that has run before (a new day's file costs some 80 KiB once a day). The sectors the loop device wrote
(``/sys/block/loopN/stat``, journal and metadata included) are read after a ``sync -f`` before and after N
minutes of polling (after start-up) and extrapolated to a day; with batching, choose N as a multiple of the
window, so the window holds whole flushes.

Cases (``--cases``, or ``--parts`` for all):
- before: the port file on the disk, each data-log row appended and fsynced at once (``flush_interval = 0``);
- after: the port file on a tmpfs seeded from a file on the disk (``[nut] seed_file``), rows batched;
- port-disk, port-tmpfs, log-row, log-batched: the port file alone (on the disk, seeded on tmpfs), the data log
  alone (a row per poll, batched);
- and, with the API on, the device list: a burst of peer updates (POST /api/v1/api.php) from nodes new to the
  list (each one rewrites the file: the bytes per write), then a burst from the same nodes announcing again (their
  stamps alone change: held for ``[peers] device_list_flush_interval``, so nothing should reach the disk), scaled
  to ``--peers`` peers announcing every 15 minutes: one write per window, as long as a stamp comes in each.

Usage: sudo .venv/bin/python -m bench.flash_writes [--minutes 10] [--cases before,after | --parts] [--peers 4]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.simproc import simulator
from nutbridge.config_sections import DEFAULT_DEVICE_LIST_FLUSH_INTERVAL, DEFAULT_FLUSH_INTERVAL
from nutbridge.datalog.dayfiles import day_files, read_day
from nutbridge.datalog.format import HEADER, csv_line, day_file

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "etc" / "solar.dev.sample"  # the hand-written lines of the shipped port file
IMAGE_SIZE = "512M"
MOUNT_OPTIONS = "noatime"  # Raspberry Pi OS's fstab: defaults,noatime
KEY = "flash bench network key"
SECTOR = 512
POSTS = 20  # peer updates in the device-list burst
ANNOUNCE_INTERVAL = 900.0  # seconds between a peer's updates (peers.announce_interval's default)


@dataclass(frozen=True)
class Case:
    """One configuration to measure."""

    name: str
    seeded: bool  # port file on tmpfs, seeded from the disk; else on the disk
    datalog: bool
    flush_interval: float = 0.0
    api: bool = True


@dataclass(frozen=True)
class Result:
    """What one case wrote."""

    case: Case
    seconds: float
    bytes_written: int
    writes: int  # write requests the loop device got
    rows: int  # data-log rows on disk after the stop

    @property
    def per_day(self) -> float:
        return self.bytes_written * 86400 / self.seconds


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def disk_writes(device: str) -> tuple[int, int]:
    """(write requests, sectors written) of a block device so far."""
    fields = Path(f"/sys/block/{Path(device).name}/stat").read_text().split()
    return int(fields[4]), int(fields[6])


@contextlib.contextmanager
def ext4_disk(folder: Path) -> Iterator[tuple[Path, str]]:
    """An ext4 filesystem in a file, on a loop device, mounted at ``folder``/disk: (mount point, device)."""
    image, point = folder / "disk.img", folder / "disk"
    sh("truncate", "-s", IMAGE_SIZE, str(image))
    sh("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(image))
    point.mkdir()
    device = sh("losetup", "--find", "--show", str(image))
    try:
        sh("mount", "-o", MOUNT_OPTIONS, device, str(point))
        try:
            yield point, device
        finally:
            sh("umount", str(point))
    finally:
        sh("losetup", "-d", device)
        image.unlink()


@contextlib.contextmanager
def tmpfs(point: Path) -> Iterator[Path]:
    """A small tmpfs at ``point``, as /run/nut is."""
    point.mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=1m,mode=0770", "tmpfs", str(point))
    try:
        yield point
    finally:
        sh("umount", str(point))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def write_config(disk: Path, case: Case, *, run: Path, sim_port: int, api_port: int, poll: float) -> Path:
    """The daemon's config on the disk (read once at start); the port file (or its seed) from the sample."""
    lib = disk / "var" / "lib" / "nut"
    lib.mkdir(parents=True)
    (lib / "solar.dev").write_bytes(SAMPLE.read_bytes())
    nut = f'port_file = "{lib / "solar.dev"}"\n'
    if case.seeded:
        nut = f'port_file = "{run / "solar.dev"}"\nseed_file = "{lib / "solar.dev"}"\n'
    text = (
        f'[source]\nkind = "tracer"\nurl = "tcp://127.0.0.1:{sim_port}"\n[monitor]\npoll_interval = {poll:g}\n'
        f'[nut]\n{nut}version = "2.8.0"\ndriver_restart_command = ""\n'
    )
    if case.datalog:
        folder = disk / "var" / "lib" / "nutbridge"
        folder.mkdir(parents=True)  # as on a node that has run before: today's file is there (its header)
        day_file(folder, dt.date.today()).write_text(csv_line(HEADER))
        text += f'[datalog]\nfolder = "{folder}"\nflush_interval = {case.flush_interval:g}\n'
    if case.datalog and case.api:
        text += f'[api]\nlisten = "127.0.0.1:{api_port}"\n[peers]\nnetwork_key = "{KEY}"\n'
    config = disk / "etc" / "nutbridge-solar.toml"
    config.parent.mkdir(parents=True)
    config.write_text(text)
    config.chmod(0o600)
    return config


def post_peer(api_port: int, n: int) -> None:
    """Peer ``n``'s update, as Solar Protocol's nodes post it (a new stamp each time, the rest the same)."""
    form = {"api_key": KEY, "stamp": f"{time.time():.3f}", "ip": f"192.0.2.{10 + n % 200}",
            "mac": f"b8:27:eb:00:00:{n % 250:02x}", "name": f"Node {n % 250}", "tz": "Europe/London",
            "log": ""}  # fmt: skip
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/v1/api.php", data=data, timeout=10) as answer:
        answer.read()


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def measure(case: Case, minutes: float, poll: float, posts: int = 0) -> tuple[Result, tuple[float, float] | None]:
    """Run the daemon for ``minutes`` in ``case``; then, with ``posts``, the bytes per update of a new peer
    and per update of a known one."""
    with tempfile.TemporaryDirectory(prefix="nutbridge-flash-") as tmp, simulator("--mode", "day") as sim_port:
        folder = Path(tmp)
        with ext4_disk(folder) as (disk, device), tmpfs(folder / "run") as run:
            api_port = free_port()
            config = write_config(disk, case, run=run, sim_port=sim_port, api_port=api_port, poll=poll)
            port_file = (run if case.seeded else disk / "var" / "lib" / "nut") / "solar.dev"
            log_file = disk / "var" / "log" / "nutbridge.log"
            log_file.parent.mkdir(parents=True)
            with log_file.open("ab") as log:
                daemon = subprocess.Popen([sys.executable, "-m", "nutbridge", "-c", str(config)], cwd=tmp,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
            try:
                wait_until(lambda: port_file.exists() and "ups.status" in port_file.read_text(), "the first poll")
                time.sleep(2 * poll)  # start-up done: the first rows, the settings read
                sh("sync", "-f", str(disk))
                start, (writes0, sectors0) = time.monotonic(), disk_writes(device)
                time.sleep(minutes * 60)
                sh("sync", "-f", str(disk))
                seconds, (writes1, sectors1) = time.monotonic() - start, disk_writes(device)
                per_post = None
                if posts:
                    bursts = []
                    for _ in ("new", "known"):
                        before = disk_writes(device)[1]
                        for n in range(posts):
                            post_peer(api_port, n)
                            sh("sync", "-f", str(disk))
                        bursts.append((disk_writes(device)[1] - before) * SECTOR / posts)
                    per_post = (bursts[0], bursts[1])
                    if daemon.poll() is not None:
                        raise RuntimeError("the daemon exited")
            finally:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(timeout=30)
            if daemon.returncode != 0:
                raise RuntimeError(f"the daemon exited {daemon.returncode}: {log_file.read_text()[-2000:]}")
            rows = 0
            if case.datalog:
                rows = sum(len(read_day(p)) - 1 for p in day_files(disk / "var" / "lib" / "nutbridge"))
            result = Result(case, seconds, (sectors1 - sectors0) * SECTOR, writes1 - writes0, rows)
            return result, per_post


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.flash_writes", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="minutes of polling per case (default 10)")
    p.add_argument("--poll", type=float, default=5.0, help="poll interval, seconds (default 5)")
    p.add_argument("--flush-interval", type=float, default=DEFAULT_FLUSH_INTERVAL,
                   help=f"the batched data log's window, seconds (default {DEFAULT_FLUSH_INTERVAL:g})")  # fmt: skip
    p.add_argument("--parts", action="store_true", help="every case: also the port file and the data log alone")
    p.add_argument("--peers", type=int, default=4, help="peers posting updates every 15 minutes (default 4)")
    p.add_argument("--cases", default="before,after", help="comma-separated: before, after, port-disk, port-tmpfs, "
                   "log-row, log-batched (default before,after)")  # fmt: skip
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench.flash_writes: run as root (it makes a loop device and mounts filesystems)")
    for tool in ("mkfs.ext4", "losetup", "mount", "umount", "sync"):
        if shutil.which(tool) is None:
            sys.exit(f"bench.flash_writes: {tool} is missing")
    batched = args.flush_interval
    cases = {
        "before": Case("before: port file on disk, a row per poll", seeded=False, datalog=True),
        "after": Case(f"after: seeded tmpfs port file, rows every {batched:g} s", True, True, batched),
        "port-disk": Case("part: port file alone, on disk", seeded=False, datalog=False, api=False),
        "port-tmpfs": Case("part: seeded tmpfs port file alone", seeded=True, datalog=False, api=False),
        "log-row": Case("part: data log alone, a row per poll", seeded=True, datalog=True, api=False),
        "log-batched": Case(f"part: data log alone, rows every {batched:g} s", True, True, batched, api=False),
    }
    names = list(cases) if args.parts else args.cases.split(",")
    unknown = [name for name in names if name not in cases]
    if unknown:
        sys.exit(f"bench.flash_writes: no case {', '.join(unknown)}; pick from {', '.join(cases)}")
    chosen = [cases[name] for name in names]
    print(f"{args.minutes:g} min per case, a poll every {args.poll:g} s, ext4 ({MOUNT_OPTIONS}) on a loop device")
    per_post = None
    for case in chosen:
        posts = POSTS if case.seeded and case.api and case.datalog and per_post is None else 0
        result, measured = measure(case, args.minutes, args.poll, posts)
        per_post = measured if measured is not None else per_post
        print(
            f"{case.name}: {mb(result.per_day)}/day ({result.bytes_written / 1024:.0f} KiB in "
            f"{result.seconds / 60:.1f} min, {result.writes} write requests; {result.rows} rows logged)",
            flush=True,
        )
    if per_post is not None:
        per_write, per_restamp = per_post
        updates = args.peers * 86400 / ANNOUNCE_INTERVAL
        window = DEFAULT_DEVICE_LIST_FLUSH_INTERVAL
        writes = min(updates, 86400 / window) if window else updates
        print(
            f"device list: {per_write / 1024:.1f} KiB per write (a new peer); {per_restamp / 1024:.1f} KiB per "
            f"update of a known peer (stamp held); {args.peers} peers every {ANNOUNCE_INTERVAL / 60:g} min "
            f"({updates:.0f} updates/day), written every {window:g} s: {writes:.0f} writes, "
            f"{mb(per_write * writes)}/day (a write per update: {mb(per_write * updates)}/day)"
        )


if __name__ == "__main__":
    main()
