"""CPU time and processes started per poll cycle of the Enphase gateway in TEST mode, at a 5 s interval: nutbridge
in-process, and, side by side, the original enphase-monitor (bash, v0.9.1) on the same machine.

nutbridge: the source as ``daemon.open_envoy`` builds it in TEST mode (EnvoySource and TokenCache on the
FixtureGateway's transport, through the StateCycle), a Monitor and the PortFileSink in its SinkRunner (the
file work in a worker thread, with fsync), in a folder on the disk (NUTBRIDGE_BENCH_DIR, default /var/tmp).
A cycle is what the daemon does each interval: poll (the state loop advances: online, nocomms, online2, onbatt,
lowbatt; one token in five counts as expired and is renewed, as in enphase-monitor), publish, and wait until
the port file holds it. Its CPU is ``time.process_time()`` over the cycle (every thread of the process).
The cycles are not 5 s apart in wall time: nothing sleeps. The monitor's clock and backoff sleep, and the port
file's clock, jump to the next 5 s slot instead, so the schedule, the retries of a nocomms poll (they fill the
poll's share of the interval) and the whole-second mtime rule see a 5 s interval. The CPU a cycle takes does
not depend on how long the process then sleeps, except that caches go cold meanwhile (``--paced`` checks that
by really sleeping). Processes started: counted by an audit hook (fork, exec, posix_spawn, system,
subprocess.Popen) over a second pass; the threads alive are compared before and after it.

enphase-monitor: ``test.conf`` from its git mirror (``--git-dir``) with POLLFREQ and POLLFREQALERT at their
minimum, 5, and DEBUG off (as in service; with DEBUG=1 it starts ``uname`` and ``date`` on each token check
too), in a temporary folder, a curl that fails loudly first in PATH (never called in TEST mode). It runs in a
new PID namespace (``unshare --pid``, root), where every PID handed out is a process it started: the count
per cycle is the namespace's ``ns_last_pid`` step, exact. CPU per cycle: the script's shell with all the
children it reaped (``/proc/PID/stat`` utime+stime+cutime+cstime, in 10 ms ticks), read each time it starts
its ``sleep``. Without unshare the machine-wide ``processes`` counter of /proc/stat is used (other processes
included). The first cycle (login, INIT queries) is left out on both sides.

Usage: .venv/bin/python -m bench.envoy_cost [--cycles 100] [--original-cycles 10] [--skip-original] [--paced N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from nutbridge.devices.enphase.config import ENLIGHTEN_LOGIN, ENTREZ_TOKENS
from nutbridge.devices.enphase.family import FAMILY
from nutbridge.devices.enphase.source import EnvoySource
from nutbridge.devices.enphase.testmode import FixtureGateway
from nutbridge.devices.enphase.token import TokenCache
from nutbridge.monitor import POLL_SHARE, Monitor
from nutbridge.nut import portfile
from nutbridge.nut.driver import PortFileSink
from nutbridge.nut.portfile import HandSettings, PortFile
from nutbridge.nut.variables import first, hand_set_number, setting_names, view
from nutbridge.nut.version import Dialect, NutVersion
from nutbridge.power import DEFAULT_CHARGE_LOW
from nutbridge.sinks import SinkRunner
from nutbridge.testmode import CYCLE, StateCycle

INTERVAL = 5.0
SERIAL = "202400000001"
SEED = "# bench: hand-set lines, kept\nbattery.charge.low: 18\nbattery.voltage.high: 90.0\n"
MIRROR = Path("/work/.mirror/sshambar+enphase-monitor/repo")
PROCESS_EVENTS = {"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system", "subprocess.Popen"}
CURL_STUB = '#!/bin/sh\necho "bench curl stub: curl called in TEST mode: $*" >&2\necho "$*" >> "{called}"\nexit 97\n'
STATE_NAMES = [s.value for s in CYCLE]


class VirtualTime:
    """Real time plus a jump to each next slot: the monitor's clock and sleep, the port file's time.time()."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def time(self) -> float:
        return time.time() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.offset += max(0.0, seconds)
        await asyncio.sleep(0)


@dataclass
class Counts:
    processes: int = 0
    events: dict[str, int] | None = None


COUNTS = Counts(events={})


def audit(event: str, _args: tuple[Any, ...]) -> None:
    if event in PROCESS_EVENTS:
        COUNTS.processes += 1
        assert COUNTS.events is not None
        COUNTS.events[event] = COUNTS.events.get(event, 0) + 1


def proc_stat_processes() -> int:
    """The kernel's count of tasks created since boot, machine-wide (``processes`` in /proc/stat)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("processes "):
            return int(line.split()[1])
    raise RuntimeError("/proc/stat has no processes line")


def tids() -> set[int]:
    return {int(t) for t in os.listdir("/proc/self/task")}


@dataclass
class Pass:
    cpu: list[float]  # seconds per cycle
    states: list[str]
    wrote: list[bool]  # the port file was replaced or renamed in the cycle
    renewed: list[bool]  # the token was renewed (TEST mode's one in five)
    user: float  # os.times() over the cycles after the warm-up, seconds
    system: float
    wall: float
    processes: int  # started during the cycles after the warm-up (the audit hook, when installed)
    new_threads: int  # threads alive at the end that were not after the warm-up


def stamp(*paths: Path) -> tuple[int, ...]:
    """The mtime and inode of each file, 0 for a missing one: what changes when it is replaced or renamed."""
    out: list[int] = []
    for path in paths:
        try:
            st = os.stat(path)
            out += [st.st_mtime_ns, st.st_ino]
        except FileNotFoundError:
            out += [0, 0]
    return tuple(out)


async def cycles(folder: Path, count: int, paced: float) -> Pass:
    """``count`` cycles after one warm-up cycle (the login, the once-per-connection queries)."""
    port_file, token_file = folder / "test.dev", folder / "enphase-bench.token"
    port_file.write_text(SEED)
    vt = VirtualTime()
    gateway = FixtureGateway({}, serial=SERIAL, login_url=ENLIGHTEN_LOGIN, token_url=ENTREZ_TOKENS)
    tokens = TokenCache(token_file, serial=SERIAL, username="test", password="test", login_url=ENLIGHTEN_LOGIN,
                        token_url=ENTREZ_TOKENS, min_renew_interval=0.0, transport=gateway.transport)  # fmt: skip
    source = EnvoySource("envoy.local", serial=SERIAL, tokens=tokens, transport=gateway.transport)
    pf = PortFile(port_file)
    pf.locate()
    by_hand = HandSettings(pf, {"battery.charge.low"}).get

    def charge_low() -> float:
        return first(hand_set_number(by_hand().get("battery.charge.low")), DEFAULT_CHARGE_LOW)

    cycle_source = StateCycle(source, gateway.driver(tokens), charge_low)
    settings = setting_names(FAMILY.table)
    sink = PortFileSink(pf, dialect=Dialect(NutVersion(2, 8, 0)), settings=settings)
    runner = SinkRunner(sink)
    monitor = Monitor(cycle_source, [runner], interval=INTERVAL, interval_on_battery=INTERVAL, grace=0.0,
                      variables=view(FAMILY.table, HandSettings(pf, settings).get), charge_low=charge_low,
                      before_poll=cycle_source.advance,
                      clock=vt.monotonic, sleep=vt.sleep)  # fmt: skip
    task = asyncio.create_task(runner.run())
    timing = Pass([], [], [], [], 0.0, 0.0, 0.0, 0, 0)
    with mock.patch.object(portfile, "time", vt):
        async with cycle_source:
            next_at = vt.monotonic()
            for n in range(count + 1):
                if n == 1:
                    before, began, processes, threads = os.times(), time.monotonic(), COUNTS.processes, tids()
                files, token = stamp(port_file, pf.hidden_path), stamp(token_file)
                t0 = time.process_time()
                snapshot = await monitor.poll(next_at + monitor.active_interval * POLL_SHARE)
                monitor.publish(snapshot)
                await runner.handled(snapshot.seq)
                spent = time.process_time() - t0
                if n > 0:
                    timing.cpu.append(spent)
                    timing.states.append(cycle_source.state.value if cycle_source.state else "?")
                    timing.wrote.append(stamp(port_file, pf.hidden_path) != files)
                    timing.renewed.append(stamp(token_file) != token)
                next_at += monitor.active_interval
                if paced:
                    await asyncio.sleep(paced)
                vt.offset += max(0.0, next_at - vt.monotonic())  # on to the next slot, without sleeping
            if count:
                after = os.times()
                timing.user, timing.system = after.user - before.user, after.system - before.system
                timing.wall = time.monotonic() - began
                timing.processes = COUNTS.processes - processes
                timing.new_threads = len(tids() - threads)
    runner.close()
    await task
    return timing


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def by_state(values: list[float], states: list[str], fmt: Callable[[float], str]) -> str:
    parts = []
    for name in STATE_NAMES:
        mine = [v for v, s in zip(values, states, strict=True) if s == name]
        if mine:
            parts.append(f"{name} {fmt(statistics.median(mine))}")
    return ", ".join(parts)


def split_by(values: list[float], flags: list[bool], yes: str, no: str) -> str:
    with_it = [v for v, f in zip(values, flags, strict=True) if f]
    without = [v for v, f in zip(values, flags, strict=True) if not f]
    parts = [f"{label} ({len(part)}) {ms(statistics.median(part))}" for label, part in ((yes, with_it), (no, without))
             if part]  # fmt: skip
    return ", ".join(parts)


def nutbridge_cost(count: int, paced: float) -> None:
    # Logged as the daemon logs (INFO, time-stamped), into /dev/null: TEST mode logs each state.
    with open(os.devnull, "w") as devnull:
        logging.basicConfig(stream=devnull, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        base = Path(os.environ.get("NUTBRIDGE_BENCH_DIR", "/var/tmp"))
        with tempfile.TemporaryDirectory(dir=base, prefix="envoy-cost-") as folder:
            timing = asyncio.run(cycles(Path(folder), count, paced))
        # Second pass, processes: an audit hook cannot be removed, so it is not there while the CPU is timed.
        sys.addaudithook(audit)
        counter_before = proc_stat_processes()
        with tempfile.TemporaryDirectory(dir=base, prefix="envoy-cost-") as folder:
            counted = asyncio.run(cycles(Path(folder), count, 0.0))
        counter = proc_stat_processes() - counter_before
    n = len(timing.cpu)
    pace = f"really sleeping {paced:g} s between cycles" if paced else "no sleeping: the clocks jump to each slot"
    print(f"nutbridge, TEST mode, {INTERVAL:g} s interval ({pace}), {n} cycles after a warm-up one:")
    print(f"  CPU per cycle: median {ms(statistics.median(timing.cpu))}, p90 {ms(quantile(timing.cpu, 0.9))}, "
          f"mean {ms(statistics.fmean(timing.cpu))}, max {ms(max(timing.cpu))} (target < 2 ms)")  # fmt: skip
    print(f"  median by state: {by_state(timing.cpu, timing.states, ms)}")
    print(f"  median by work: {split_by(timing.cpu, timing.wrote, 'port file written or renamed', 'unchanged')}; "
          f"{split_by(timing.cpu, timing.renewed, 'token renewed', 'token kept')}")  # fmt: skip
    print(f"  os.times over the pass: user {ms(timing.user / n)} + system {ms(timing.system / n)} per cycle, "
          f"{timing.wall:.2f} s of wall time for {n} cycles")  # fmt: skip
    m = len(counted.cpu)
    events = COUNTS.events or "no such event"
    print(f"  processes started (audit hook, second pass): {counted.processes} in {m} cycles, "
          f"{counted.processes / m:g} per poll (target: none; {events}); {check_hook()}")  # fmt: skip
    print(f"  threads started after the warm-up: {counted.new_threads} (asyncio's executor adds a worker when none "
          f"is idle); the machine-wide /proc/stat counter rose by {counter} over the pass (threads and every "
          "other process on this machine included)")  # fmt: skip


def check_hook() -> str:
    """That the audit hook does count: one process started on purpose."""
    before = COUNTS.processes
    subprocess.run(["true"], check=True)
    seen = COUNTS.processes - before
    COUNTS.processes = before
    return f"the hook's self-check: {seen} for one `true` started on purpose"


# --- the original ---------------------------------------------------------------------------------------


def stat_cpu_ticks(pid: int) -> int:
    """utime + stime + cutime + cstime of ``pid``: itself and every child it has reaped."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return sum(int(f) for f in fields[11:15])


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return ""


def spawn_counter(in_namespace: bool) -> int:
    if in_namespace:
        return int(Path("/proc/sys/kernel/ns_last_pid").read_text())
    return proc_stat_processes()


def original_inner(folder: Path, count: int, timeout: float, in_namespace: bool) -> None:
    """In the PID namespace (pid 1): run the script, and at each ``sleep`` it starts, print its CPU and PID count.

    No thread and no process of this sampler's own is started after the script, so in the namespace every
    PID handed out from then on is the script's.
    """
    env = {"PATH": f"{folder.parent / 'bin'}:/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": str(folder)}
    with (folder / "stderr").open("w") as err, (folder / "stdout").open("w") as out:
        proc = subprocess.Popen(["bash", str(folder.parent / "enphase-monitor"), "-c", "test.conf"], cwd=folder,
                                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)  # fmt: skip
    start_pid = spawn_counter(in_namespace)
    seen: set[int] = set()
    marks: list[dict[str, int]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(marks) < count + 1 and time.monotonic() < deadline and proc.poll() is None:
            for child in children(proc.pid):
                if child not in seen and comm(child) == "sleep":
                    seen.add(child)
                    marks.append({"cpu_ticks": stat_cpu_ticks(proc.pid), "pids": spawn_counter(in_namespace)})
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
    print(json.dumps({"start_pids": start_pid, "marks": marks, "rc": proc.returncode, "hz": os.sysconf("SC_CLK_TCK")}))


def bench_line(line: str) -> str:
    """A line of test.conf as this bench runs it: the intervals at enphase-monitor's minimum, DEBUG off."""
    if line.startswith(("POLLFREQ=", "POLLFREQALERT=")):
        return line.split("=", maxsplit=1)[0] + "=5"
    return "#DEBUG=1  (off in this bench, as in service)" if line == "DEBUG=1" else line


@contextlib.contextmanager
def original_folder(git_dir: Path) -> Iterator[Path]:
    """$TMP/run with test.conf (POLLFREQ=5, POLLFREQALERT=5, DEBUG off) and test.dev from test-ref.dev."""

    def show(path: str) -> str:
        return subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:{path}"], check=True,
                              capture_output=True, text=True).stdout  # fmt: skip

    base = Path(tempfile.mkdtemp(prefix="envoy-cost-original-", dir=os.environ.get("NUTBRIDGE_BENCH_DIR", "/var/tmp")))
    try:
        (base / "bin").mkdir()
        (base / "bin" / "curl").write_text(CURL_STUB.format(called=base / "curl-called"))
        (base / "bin" / "curl").chmod(0o755)
        (base / "enphase-monitor").write_text(show("enphase-monitor"))
        run = base / "run"
        run.mkdir()
        conf = [bench_line(line) for line in show("test.conf").splitlines()]
        (run / "test.conf").write_text("\n".join(conf) + "\n")
        (run / "test.conf").chmod(0o600)
        (run / "test.dev").write_text(show("test-ref.dev"))
        yield run
    finally:
        shutil.rmtree(base, ignore_errors=True)


def original_cost(git_dir: Path, count: int) -> None:
    missing = [exe for exe in ("bash", "jq", "git", "base64", "stat", "date", "head", "uname") if not shutil.which(exe)]
    if missing:
        print(f"enphase-monitor: skipped, it needs {', '.join(missing)} (apt-get install jq coreutils git)")
        return
    if not (git_dir / "HEAD").exists():
        print(f"enphase-monitor: skipped, no git mirror at {git_dir} (--git-dir)")
        return
    timeout = (count + 3) * (INTERVAL + 1) + 10
    with original_folder(git_dir) as run:
        inner = [sys.executable, "-m", "bench.envoy_cost", "--original-inner", str(run), str(count), str(timeout)]
        namespace = (
            shutil.which("unshare") is not None
            and subprocess.run(
                ["unshare", "--pid", "--fork", "--mount-proc", "true"], check=False, capture_output=True
            ).returncode
            == 0
        )
        args = ["unshare", "--pid", "--fork", "--mount-proc", *inner, "ns"] if namespace else [*inner, "host"]
        env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        done = subprocess.run(args, check=False, capture_output=True, text=True, env=env, timeout=timeout + 30)
        called = (run.parent / "curl-called").exists()
        stderr = (run / "stderr").read_text() if (run / "stderr").exists() else ""
    if done.returncode != 0 or not done.stdout.strip():
        print(f"enphase-monitor: the measurement failed (rc {done.returncode}): {done.stderr.strip()[-500:]}")
        return
    result = json.loads(done.stdout.strip().splitlines()[-1])
    marks, hz = result["marks"], result["hz"]
    if len(marks) < 2:
        print(f"enphase-monitor: fewer than 2 cycles seen; its stderr: {stderr[-500:]}")
        return
    cpu = [(b["cpu_ticks"] - a["cpu_ticks"]) / hz for a, b in itertools.pairwise(marks)]
    spawned = [float(b["pids"] - a["pids"]) for a, b in itertools.pairwise(marks)]
    states = [STATE_NAMES[(k + 1) % len(STATE_NAMES)] for k in range(len(cpu))]  # the first cycle was online
    first_cycle = marks[0]["pids"] - result["start_pids"]
    how = "exact: a PID namespace of its own" if namespace else "machine-wide /proc/stat, other processes included"
    print(f"enphase-monitor v0.9.1, TEST mode, POLLFREQ=POLLFREQALERT=5, DEBUG off, {len(cpu)} cycles after the "
          f"first (which took {marks[0]['cpu_ticks'] / hz * 1000:.0f} ms of CPU from its start, "
          f"{first_cycle} processes):")  # fmt: skip
    total = (marks[-1]["cpu_ticks"] - marks[0]["cpu_ticks"]) / hz
    print(f"  CPU per cycle: median {ms(statistics.median(cpu))}, p90 {ms(quantile(cpu, 0.9))}, mean "
          f"{ms(total / len(cpu))} ({1000 / hz:g} ms ticks of the shell and the children it reaped)")  # fmt: skip
    print(f"  median by state: {by_state(cpu, states, ms)}")
    print(f"  processes started per cycle ({how}): median {statistics.median(spawned):g}, "
          f"mean {statistics.fmean(spawned):.1f}, min {min(spawned):g}, max {max(spawned):g}; "
          f"by state: {by_state(spawned, states, lambda v: f'{v:g}')}")  # fmt: skip
    print(
        f"  curl called: {'YES' if called else 'never'} (a real gateway adds one curl per query: relay, live "
        "data and meters each poll)"
    )


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--original-inner":
        original_inner(Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5] == "ns")
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=100, help="nutbridge cycles (default 100)")
    p.add_argument("--original-cycles", type=int, default=10, help="enphase-monitor cycles, 5 s each (default 10)")
    p.add_argument("--skip-original", action="store_true", help="measure nutbridge only")
    p.add_argument("--paced", type=float, default=0.0, metavar="SECONDS", help="really sleep between nutbridge cycles")
    p.add_argument("--git-dir", type=Path, default=MIRROR, help="git mirror of sshambar/enphase-monitor")
    args = p.parse_args()
    assert threading.active_count() == 1
    nutbridge_cost(args.cycles, args.paced)
    if not args.skip_original:
        print()
        original_cost(args.git_dir, args.original_cycles)


if __name__ == "__main__":
    main()
