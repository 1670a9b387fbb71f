"""Helpers for the end-to-end tests: a private NUT stack, the simulator and nutbridge as real processes.

Nothing here touches the system's NUT setup: every NUT program gets NUT_CONFPATH, NUT_STATEPATH and
NUT_ALTPIDPATH pointing into a private folder, listens on 127.0.0.1 only, and is stopped by its PID.
See shared/reference/nut-and-enphase-monitor.md, parts 2 and 3, for the NUT 2.8.0 behaviour relied on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, Self, TypeVar

import pytest

from nutbridge.nut.upsconf import find_upsdrvctl
from nutbridge.nut.version import find_dummy_ups
from tests.helpers import free_port

UPS = "solar"


def nut_program(name: str) -> Path:
    """A NUT daemon: the real binary in /lib/nut up to 2.8.4 (/usr/sbin has a wrapper that reads
    /etc/nut/nut.conf there), /usr/sbin from 2.8.5; the first path tried when none exists."""
    candidates = [Path(folder) / name for folder in ("/lib/nut", "/usr/lib/nut", "/usr/sbin")]
    return next((c for c in candidates if os.access(c, os.X_OK)), candidates[0])


DUMMY_UPS = find_dummy_ups() or Path("/lib/nut/dummy-ups")  # /usr/libexec/nut from 2.8.5
UPSD = nut_program("upsd")
UPSMON = nut_program("upsmon")
UPSDRVCTL = Path(find_upsdrvctl() or "/sbin/upsdrvctl")
UPSMON_SYSTEM_PIDFILE = Path("/run/nut/upsmon.pid")  # upsmon 2.8.0 writes it whatever NUT_ALTPIDPATH says

START_TIMEOUT = 30.0  # generous: the test machine is noisy
STOP_TIMEOUT = 15.0
POLL_STEP = 0.2

T = TypeVar("T")


def upsc_path() -> str | None:
    """Where upsc is, or None."""
    return shutil.which("upsc")


def missing_programs() -> list[str]:
    """The NUT programs these tests need that are not installed."""
    missing = [str(p) for p in (DUMMY_UPS, UPSD, UPSMON, UPSDRVCTL) if not os.access(p, os.X_OK)]
    if upsc_path() is None:
        missing.append("upsc")
    return missing


def require_nut() -> None:
    """At a NUT test module's import: skip it where NUT cannot run, but fail it in CI, where it must."""
    reason = why_not_runnable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"NUT end-to-end tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def start_simulator(rig: SimulatorRig, mode: str, *, port: int = 0, soc: float | None = None) -> Simulator:
    """Start a simulator for ``rig`` in ``mode`` (on ``port``, or a free one), stopped with the rig's closers."""
    sim = Simulator(rig.folder, mode=mode, port=port, soc=soc, name=f"simulator{len(rig.sims) + 1}")
    rig.sims.append(sim)
    rig.closers.callback(sim.stop)
    sim.start()
    return sim


class SimulatorRig(Protocol):
    """A test's processes as start_simulator needs them."""

    folder: Path
    closers: contextlib.ExitStack
    sims: list[Simulator]


def why_not_runnable() -> str | None:
    """Why these tests cannot run here (NUT missing, not root), or None."""
    missing = missing_programs()
    if missing:
        return f"NUT programs missing: {', '.join(missing)} (apt-get install nut-server nut-client)"
    if os.geteuid() != 0:
        return "the NUT end-to-end tests run the NUT daemons with -u root and need root"
    return None


def tail(text: str, lines: int = 40) -> str:
    """The last ``lines`` lines of ``text``, indented for a failure message."""
    picked = text.rstrip("\n").splitlines()[-lines:]
    return "\n".join("    " + line for line in picked) if picked else "    (empty)"


def read_text(path: Path) -> str:
    """A file's text, or a note saying it is missing."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path.name} does not exist)"


def wait_for(
    probe: Callable[[], T],
    accept: Callable[[T], bool],
    *,
    timeout: float,
    what: str,
    details: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until ``accept`` likes its value; return that value.

    After ``timeout`` seconds, fail with ``what``, the last value seen and ``details()``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if accept(value):
            return value
        if time.monotonic() >= deadline:
            extra = f"\n{details()}" if details else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last value: {value!r}{extra}")
        time.sleep(POLL_STEP)


def hold(
    probe: Callable[[], T],
    accept: Callable[[T], bool],
    *,
    duration: float,
    what: str,
    details: Callable[[], str] | None = None,
) -> T:
    """Check that ``accept(probe())`` stays true for ``duration`` seconds; fail at the first value it rejects."""
    deadline = time.monotonic() + duration
    while True:
        value = probe()
        if not accept(value):
            extra = f"\n{details()}" if details else ""
            raise AssertionError(f"expected {what} for {duration:g} s, but got {value!r}{extra}")
        if time.monotonic() >= deadline:
            return value
        time.sleep(POLL_STEP)


def process_env(pid: int) -> dict[str, str]:
    """The environment a process started with (empty if it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in pairs}


def pids_with_env(name: str, value: str) -> list[int]:
    """PIDs of processes whose environment has ``name=value`` (how leftovers of one stack are found)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and process_env(int(entry.name)).get(name) == value:
            found.append(int(entry.name))
    return found


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def kill_pid(pid: int, *, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, wait for it to go, then SIGKILL. For processes that are not our children (NUT daemons)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not pid_alive(pid):
            return


def read_pid(path: Path) -> int | None:
    """The PID in a pid file, or None."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_child(proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM) -> int:
    """Stop a child we started: ``sig``, wait, SIGKILL if it lingers; return its exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
    return proc.returncode


class NutStack:
    """dummy-ups (mode dummy-once) + upsd (+ upsmon on demand) in a private folder, on 127.0.0.1.

    Layout under ``root``: etc/ (NUT_CONFPATH), state/ (NUT_STATEPATH and NUT_ALTPIDPATH), data/solar.dev
    (the port file), log/ (upsd, upsmon, stub outputs).
    """

    def __init__(
        self,
        root: Path,
        *,
        port_file_text: str = "",
        deadtime: int = 6,
        pollfreq: int = 1,
        finaldelay: int = 0,
    ) -> None:
        self.root = root
        self.etc = root / "etc"
        self.state = root / "state"
        self.data = root / "data"
        self.logs = root / "log"
        self.port_file = self.data / f"{UPS}.dev"
        self.nocomms_file = self.data / f"{UPS}.dev-nocomms"
        self.shutdown_file = self.logs / "shutdown-ran"
        self.notify_file = self.logs / "notify"
        self.powerdown_flag = self.state / "killpower"
        self.port = free_port()
        self.deadtime = deadtime
        self.pollfreq = pollfreq
        self.finaldelay = finaldelay
        self.port_file_text = port_file_text
        self.upsmon: subprocess.Popen[bytes] | None = None
        self._upsmon_pidfile_existed = UPSMON_SYSTEM_PIDFILE.exists()
        self._made_run_dir = False
        upsc = upsc_path()
        if upsc is None:
            raise RuntimeError("upsc is not installed")
        self.upsc_bin = upsc
        self.env = {
            **os.environ,
            "NUT_CONFPATH": str(self.etc),
            "NUT_STATEPATH": str(self.state),
            "NUT_ALTPIDPATH": str(self.state),
        }

    @property
    def address(self) -> str:
        """What upsc and upsmon call this UPS."""
        return f"{UPS}@127.0.0.1:{self.port}"

    @property
    def restart_command(self) -> str:
        """What nutbridge runs to bring dummy-ups back (with this stack's env)."""
        return f"{UPSDRVCTL} -u root start {UPS}"

    @property
    def driver_pidfile(self) -> Path:
        """dummy-ups' pid file."""
        return self.state / f"dummy-ups-{UPS}.pid"

    @property
    def upsd_pidfile(self) -> Path:
        """upsd's pid file."""
        return self.state / "upsd.pid"

    # ---------------------------------------------------------------- setup

    def write_configs(self) -> None:
        """ups.conf, upsd.conf, upsd.users, upsmon.conf and the stub scripts; the port file if missing."""
        for folder in (self.etc, self.state, self.data, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        self.etc.chmod(0o700)
        self.state.chmod(0o700)
        # user = root: a driver that nutbridge restarts with a plain `upsdrvctl start` may use the root-only folders
        (self.etc / "ups.conf").write_text(
            f"user = root\n[{UPS}]\n  driver = dummy-ups\n  port = {self.port_file}\n  mode = dummy-once\n"
            '  desc = "nutbridge e2e"\n'
        )
        self.write_upsd_conf()
        (self.etc / "upsd.users").write_text("[monuser]\n  password = secret\n  upsmon primary\n")
        shutdown_stub = self.etc / "shutdown-stub"
        shutdown_stub.write_text(f'#!/bin/sh\necho "shutdown $(date +%s)" >> {self.shutdown_file}\n')
        notify_stub = self.etc / "notify-stub"
        notify_stub.write_text(f'#!/bin/sh\necho "$NOTIFYTYPE $UPSNAME $*" >> {self.notify_file}\n')
        flags = "\n".join(
            f"NOTIFYFLAG {event} SYSLOG+EXEC"
            for event in ("ONLINE", "ONBATT", "LOWBATT", "FSD", "COMMOK", "COMMBAD", "SHUTDOWN", "NOCOMM")
        )
        (self.etc / "upsmon.conf").write_text(
            f"MONITOR {self.address} 1 monuser secret primary\n"
            "MINSUPPLIES 1\n"
            f"SHUTDOWNCMD {shutdown_stub}\n"
            f"NOTIFYCMD {notify_stub}\n"
            f"{flags}\n"
            f"POLLFREQ {self.pollfreq}\n"
            f"POLLFREQALERT {self.pollfreq}\n"
            f"DEADTIME {self.deadtime}\n"
            f"FINALDELAY {self.finaldelay}\n"
            "HOSTSYNC 2\n"
            f"POWERDOWNFLAG {self.powerdown_flag}\n"
        )
        for path in self.etc.iterdir():
            path.chmod(0o700 if path.name.endswith("-stub") else 0o600)
        if not self.port_file.exists() and not self.nocomms_file.exists():
            self.port_file.write_text(self.port_file_text)

    def write_upsd_conf(self) -> None:
        """upsd listens on loopback only, on ``self.port``."""
        (self.etc / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {self.port}\n")
        (self.etc / "upsd.conf").chmod(0o600)

    def run(self, argv: list[str], *, timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run a short NUT command with this stack's environment; output is captured."""
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )

    def admin(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``upscmd``/``upsrw`` as the admin (write_admin_users), with ``-w`` (wait for the driver's TRACKING)."""
        path = shutil.which(program) or program
        return self.run([path, "-u", ADMIN_USER, "-p", ADMIN_PASSWORD, "-w", *args])

    def start(self) -> None:
        """Write the configs, start the driver and upsd, and wait until upsc gets an answer."""
        self.write_configs()
        self.start_driver()
        self.start_upsd()
        wait_for(
            lambda: self.upsc("ups.status"),
            lambda out: not out.startswith("Error") and out != "WAIT",
            timeout=START_TIMEOUT,
            what=f"upsc {self.address} ups.status to answer after start",
            details=self.describe,
        )

    def start_driver(self) -> None:
        """``upsdrvctl -u root start solar``: the driver forks into the background once it has read the file."""
        done = self.run([str(UPSDRVCTL), "-u", "root", "start", UPS])
        if done.returncode != 0:
            raise AssertionError(f"upsdrvctl start failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def start_upsd(self) -> None:
        """upsd on a free loopback port; a port taken in the meantime gets a second (and third) try."""
        for attempt in range(3):
            done = self.run([str(UPSD), "-u", "root"])
            said = done.stdout + done.stderr
            (self.logs / f"upsd-start-{attempt}.log").write_text(said)
            if done.returncode == 0:
                break
            self.port = free_port()
            self.write_upsd_conf()
            self.write_upsmon_monitor()
        else:
            raise AssertionError(f"upsd did not start:\n{said}")
        wait_for(  # it forked; the child writes the pid file a moment later
            lambda: read_pid(self.upsd_pidfile),
            lambda pid: pid is not None and pid_alive(pid),
            timeout=START_TIMEOUT,
            what=f"upsd to write a live PID into {self.upsd_pidfile}",
            details=lambda: said,
        )

    def write_upsmon_monitor(self) -> None:
        """Point upsmon.conf's MONITOR line at the current upsd port."""
        conf = self.etc / "upsmon.conf"
        lines = [
            f"MONITOR {self.address} 1 monuser secret primary" if line.startswith("MONITOR ") else line
            for line in conf.read_text().splitlines()
        ]
        conf.write_text("\n".join(lines) + "\n")

    def start_upsmon(self) -> None:
        """upsmon as a primary, in the foreground (-D), privileged (-p); wait until it has logged in to upsd."""
        if not UPSMON_SYSTEM_PIDFILE.parent.is_dir():  # upsmon 2.8.0 puts its pid file there, NUT_ALTPIDPATH or not
            UPSMON_SYSTEM_PIDFILE.parent.mkdir(mode=0o770, parents=True)
            self._made_run_dir = True
        log = (self.logs / "upsmon.log").open("ab")
        try:
            self.upsmon = subprocess.Popen(
                [str(UPSMON), "-p", "-D"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        finally:
            log.close()
        wait_for(
            self.upsc_clients,
            lambda out: "127.0.0.1" in out,
            timeout=START_TIMEOUT,
            what="upsmon to log in to upsd (upsc -c)",
            details=self.describe,
        )

    # ---------------------------------------------------------------- queries

    def upsc(self, var: str | None = None) -> str:
        """``upsc solar@127.0.0.1:PORT [var]``: its stdout, or its error text ("Error: Driver not connected")."""
        argv = [self.upsc_bin, self.address] + ([var] if var else [])
        done = self.run(argv, timeout=STOP_TIMEOUT)
        if done.returncode == 0:
            return done.stdout.strip()
        errors = [line for line in done.stderr.splitlines() if "Init SSL" not in line]
        return "\n".join(errors).strip() or f"upsc exited {done.returncode} with no message"

    def upsc_clients(self) -> str:
        """``upsc -c``: the clients logged in to this UPS (upsmon shows up here)."""
        done = self.run([self.upsc_bin, "-c", self.address], timeout=STOP_TIMEOUT)
        return done.stdout.strip() if done.returncode == 0 else done.stderr.strip()

    def status_words(self) -> list[str]:
        """ups.status split into words; a single "Error: …" item when upsc fails."""
        out = self.upsc("ups.status")
        return [out] if out.startswith("Error") else out.split()

    def driver_pid(self) -> int | None:
        """The running dummy-ups' PID, if it runs."""
        pid = read_pid(self.driver_pidfile)
        return pid if pid is not None and pid_alive(pid) else None

    def notifications(self) -> list[str]:
        """NOTIFYCMD lines: "ONBATT solar@127.0.0.1:PORT UPS … on battery", one per event."""
        text = read_text(self.notify_file)
        return [] if text.startswith("(") else text.splitlines()

    def notified(self, event: str) -> bool:
        """True once upsmon has run NOTIFYCMD for ``event`` (ONBATT, COMMBAD, …)."""
        return any(line.split()[:1] == [event] for line in self.notifications())

    def shutdown_ran(self) -> bool:
        """True once upsmon has run SHUTDOWNCMD."""
        return self.shutdown_file.exists()

    def describe(self) -> str:
        """Everything useful when a test fails: upsc, the data folder, the port file and the logs."""
        parts = [
            f"--- upsc {self.address}:",
            tail(self.upsc(), 60),
            f"--- data folder: {sorted(p.name for p in self.data.iterdir()) if self.data.exists() else '-'}",
            f"--- dummy-ups pid: {self.driver_pid()}  upsd pid: {read_pid(self.upsd_pidfile)}",
            f"--- {self.port_file.name}:",
            tail(read_text(self.port_file), 60),
        ]
        if self.upsmon is not None:
            parts += [
                f"--- upsmon (running: {self.upsmon.poll() is None}):",
                tail(read_text(self.logs / "upsmon.log"), 30),
                "--- NOTIFYCMD:",
                tail(read_text(self.notify_file), 20),
                f"--- SHUTDOWNCMD ran: {self.shutdown_ran()}",
            ]
        return "\n".join(parts)

    # ---------------------------------------------------------------- teardown

    def stop(self) -> None:
        """Stop upsmon, upsd and the driver by PID, then anything else still running with this stack's env."""
        if self.upsmon is not None:
            stop_child(self.upsmon)
        for pidfile in (self.upsd_pidfile, self.driver_pidfile):
            pid = read_pid(pidfile)
            if pid is not None and process_env(pid).get("NUT_STATEPATH") == str(self.state):
                kill_pid(pid)
        for pid in pids_with_env("NUT_STATEPATH", str(self.state)):
            kill_pid(pid)
        if not self._upsmon_pidfile_existed and self.upsmon is not None:
            UPSMON_SYSTEM_PIDFILE.unlink(missing_ok=True)
        if self._made_run_dir:
            with contextlib.suppress(OSError):
                UPSMON_SYSTEM_PIDFILE.parent.rmdir()  # only if empty

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


LOG_LEVELS = ("DEBUG ", "INFO ", "WARNING ", "ERROR ", "CRITICAL ")  # the simulator's log lines, on stderr too


class Simulator:
    """``python -m nutbridge.simulator --listen 127.0.0.1:PORT``, steered through its stdin."""

    def __init__(
        self, folder: Path, *, mode: str = "day", port: int = 0, soc: float | None = None, name: str = "simulator"
    ) -> None:
        self.folder = folder
        self.name = name
        self.mode = mode
        self.port = port
        self.soc = soc
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdin: IO[bytes] | None = None
        self.generation = 0

    def _log(self, stream: str) -> Path:
        return self.folder / f"{self.name}-{self.generation}.{stream}"

    def start(self) -> int:
        """Start it and return the port it listens on (the given one, or a free one)."""
        self.generation += 1
        argv = [sys.executable, "-m", "nutbridge.simulator", "--listen", f"127.0.0.1:{self.port}", "--mode", self.mode]
        if self.soc is not None:
            argv += ["--soc", f"{self.soc:g}"]
        with self._log("stdout").open("wb") as out, self._log("stderr").open("wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=self.folder)
        self.stdin = self.proc.stdin
        line = wait_for(
            self._listening_line,
            lambda text: text.startswith("listening on") or self.proc is None or self.proc.poll() is not None,
            timeout=START_TIMEOUT,
            what="the simulator to print 'listening on …'",
            details=self.describe,
        )
        if not line.startswith("listening on"):
            raise AssertionError(f"the simulator exited ({self.proc.returncode})\n{self.describe()}")
        self.port = int(line.split()[2].rpartition(":")[2])
        return self.port

    def _listening_line(self) -> str:
        lines = read_text(self._log("stdout")).splitlines()
        return lines[0] if lines else ""

    @property
    def running(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def answers(self) -> list[str]:
        """What it said on stderr, one item per line."""
        return read_text(self._log("stderr")).splitlines()

    def command(self, text: str) -> str:
        """Send one command line (``night``, ``soc 5``, …) and return its answer from stderr."""
        if self.stdin is None or not self.running:
            raise AssertionError(f"simulator not running; cannot send {text!r}\n{self.describe()}")
        before = len(self.answers())
        self.stdin.write(text.encode() + b"\n")
        self.stdin.flush()
        answers = wait_for(  # its log's lines (a refused settings write, say) are no answer
            lambda: [line for line in self.answers()[before:] if not line.startswith(LOG_LEVELS)],
            bool,
            timeout=START_TIMEOUT,
            what=f"the simulator to answer {text!r}",
            details=self.describe,
        )
        answer = answers[0]
        if not answer.startswith("simulator:"):
            raise AssertionError(f"the simulator refused {text!r}: {answer}")
        return answer

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill it (SIGKILL by default: a controller that just dies) and reap it."""
        if self.proc is not None:
            stop_child(self.proc, sig=sig)
        self._close_stdin()

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.kill(signal.SIGTERM)

    def _close_stdin(self) -> None:
        if self.stdin is not None:
            with contextlib.suppress(OSError):
                self.stdin.close()
            self.stdin = None

    def describe(self) -> str:
        """Its output, for failure messages."""
        state = "running" if self.running else f"exited {self.proc.returncode if self.proc else '-'}"
        return (
            f"--- {self.name} on port {self.port} ({state}):\n"
            f"{tail(read_text(self._log('stdout')), 5)}\n{tail(read_text(self._log('stderr')), 15)}"
        )


class Nutbridge:
    """``python -m nutbridge ARGS`` with stdout and stderr in files under ``folder``."""

    def __init__(self, folder: Path, args: Iterable[str], *, env: Mapping[str, str]) -> None:
        self.folder = folder
        self.args = list(args)
        self.env = dict(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdout_path = folder / "nutbridge.stdout"
        self.stderr_path = folder / "nutbridge.stderr"

    def start(self) -> None:
        """Start it; fail at once if it exits within a moment (a bad config, a missing port file)."""
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nutbridge", *self.args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.folder,
            )
        wait_for(
            self.stderr,
            lambda text: " every " in text or not self.running,
            timeout=START_TIMEOUT,
            what="nutbridge to log its start line",
            details=self.describe,
        )
        if not self.running:
            raise AssertionError(f"nutbridge exited at start\n{self.describe()}")

    @property
    def running(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def stderr(self) -> str:
        """Its log so far."""
        return read_text(self.stderr_path)

    def stdout(self) -> str:
        """Its -v poll lines so far."""
        return read_text(self.stdout_path)

    def log_lines(self, needle: str) -> list[str]:
        """stderr lines containing ``needle``."""
        return [line for line in self.stderr().splitlines() if needle in line]

    def stop(self) -> int | None:
        """SIGTERM and wait; return its exit status (None if never started)."""
        return None if self.proc is None else stop_child(self.proc)

    def describe(self) -> str:
        """Its state and the tail of its output."""
        state = "running" if self.running else f"exited {self.proc.returncode if self.proc else '(not started)'}"
        return (
            f"--- nutbridge {' '.join(self.args)} ({state})\n--- nutbridge stderr:\n{tail(self.stderr(), 30)}\n"
            f"--- nutbridge stdout (-v):\n{tail(self.stdout(), 8)}"
        )


ADMIN_USER, ADMIN_PASSWORD = "admin", "adminpw"


def write_admin_users(etc: Path) -> None:
    """upsd.users with upsmon's user and an admin allowed every instant command and SET."""
    (etc / "upsd.users").write_text(
        "[monuser]\n  password = secret\n  upsmon primary\n"
        f"[{ADMIN_USER}]\n  password = {ADMIN_PASSWORD}\n  instcmds = ALL\n  actions = SET\n"
    )
    (etc / "upsd.users").chmod(0o600)


class DriverSocketStack(NutStack):
    """upsd alone for a UPS whose ups.conf says ``driver = nutbridge``: the test serves that driver's socket itself,
    at ``socket_path`` (where upsd looks for it); upsd.users adds an admin allowed every instant command and SET."""

    @property
    def socket_path(self) -> Path:
        """``<statepath>/nutbridge-<UPS>``."""
        return self.state / f"nutbridge-{UPS}"

    def write_configs(self) -> None:
        """NutStack's files, with the nutbridge driver in ups.conf and the admin in upsd.users."""
        super().write_configs()
        (self.etc / "ups.conf").write_text(f'[{UPS}]\n  driver = nutbridge\n  port = auto\n  desc = "driver socket"\n')
        write_admin_users(self.etc)
        (self.etc / "ups.conf").chmod(0o600)

    def start(self) -> None:
        """Write the configs and start upsd; the driver is the test's to serve."""
        self.write_configs()
        self.start_upsd()


class DriverModeStack(NutStack):
    """upsd and ``nutbridge-driver`` as NUT runs its own drivers: ups.conf says ``driver = nutbridge`` with
    ``driverpath`` at a private folder holding a ``nutbridge`` link to the console script (NUT's driver folder is
    never touched), and ``upsdrvctl`` starts and stops it. ``port = simulate`` by default: the built-in simulator,
    from a sunny morning at 600 times real speed (``config`` names its nutbridge file), so values move at every
    poll; or ``port`` a Tracer URL (a ``Simulator`` process the test steers), polled every second with
    ``grace`` as ``nocomms_grace`` (nutbridge's default when None). ``maxage``: upsd.conf's MAXAGE (upsd's
    default, 15 s, when None), how long upsd waits for a silent driver before it calls the data stale.
    upsd.users has the admin (write_admin_users) for upscmd and upsrw; ``overrides`` go into the section as
    ``override.<name> = value``."""

    def __init__(
        self,
        root: Path,
        *,
        port: str = "simulate",
        grace: float | None = None,
        maxage: int | None = None,
        overrides: Mapping[str, str] | None = None,
        deadtime: int = 6,
        pollfreq: int = 1,
        finaldelay: int = 0,
    ) -> None:
        super().__init__(root, deadtime=deadtime, pollfreq=pollfreq, finaldelay=finaldelay)
        # what the drop-in of `nutbridge setup --driver` gives nut-driver@UPS: NUT 2.8.3+'s upsdrvctl stops a
        # driver only if its process runs a program named after it, and nutbridge-driver's runs python3
        self.env["NUT_IGNORE_CHECKPROCNAME"] = "true"
        self.source_port = port
        self.grace = grace
        self.maxage = maxage
        self.overrides = dict(overrides or {})

    @property
    def driver_pidfile(self) -> Path:
        """nutbridge-driver's PID file, where NUT's drivers keep theirs."""
        return self.state / f"nutbridge-{UPS}.pid"

    def write_configs(self) -> None:
        """NutStack's files, with the nutbridge driver in ups.conf."""
        super().write_configs()
        drivers = self.root / "drivers"
        drivers.mkdir(exist_ok=True)
        link = drivers / "nutbridge"
        if not link.exists():
            link.symlink_to(Path(sys.executable).parent / "nutbridge-driver")
        toml = self.etc / "nutbridge.toml"
        if self.source_port == "simulate":
            toml.write_text('[source]\nkind = "simulator"\nspeed = 600\nstart = "09:00"\n')
        else:
            grace = f"nocomms_grace = {self.grace:g}\n" if self.grace is not None else ""
            toml.write_text(f"[monitor]\npoll_interval = 1\n{grace}")
        (self.etc / "ups.conf").write_text(
            f"user = root\ndriverpath = {drivers}\nmaxretry = 1\n"  # root: the test's folders are root's
            f"[{UPS}]\n  driver = nutbridge\n  port = {self.source_port}\n  pollinterval = 1\n  config = {toml}\n"
            + "".join(f"  override.{name} = {value}\n" for name, value in self.overrides.items())
        )
        (self.etc / "ups.conf").chmod(0o600)
        write_admin_users(self.etc)

    @contextlib.contextmanager
    def running(self) -> Iterator[Self]:
        """Started, with the driver's first ups.status in upsc, until the block ends; then the driver (by its PID
        file, whatever state the test left it in) and upsd are stopped."""
        try:
            self.start()
            wait_for(self.status_words, lambda words: words[:1] in (["OL"], ["OB"]), timeout=START_TIMEOUT,
                     what="ups.status from the driver", details=self.describe)  # fmt: skip
            yield self
        finally:
            pid = self.driver_pid()
            if pid is not None:
                kill_pid(pid)
            self.stop()

    def write_upsd_conf(self) -> None:
        """NutStack's, with MAXAGE when one is given."""
        super().write_upsd_conf()
        if self.maxage is not None:
            with (self.etc / "upsd.conf").open("a") as conf:
                conf.write(f"MAXAGE {self.maxage}\n")
