"""systemd's notifications and watchdog: sdnotify against real unix datagram sockets, the monitor's notion of
progress on a fake clock, and the real daemon on its simulator, read through a socket bound by the test.

Counts are asserted loosely (at least so many pings in a generous window) and absences only where the daemon
cannot send at all or has decided not to: never how long anything takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nutbridge.devices.tracer.nut import TABLE
from nutbridge.errors import SourceError
from nutbridge.model import DeviceInfo, Reading
from nutbridge.monitor import POLL_SHARE, STALL_SLACK, Monitor
from nutbridge.sdnotify import Notifier, Systemd, one_line, status_words
from nutbridge.snapshot import Comms, Snapshot
from tests.conftest import daemon_config
from tests.helpers import free_port

Message = dict[str, str]


def parse(datagram: bytes) -> Message:
    return dict(line.split("=", 1) for line in datagram.decode().splitlines() if line)


class Listener:
    """The service manager's end: a bound unix datagram socket and every message it got."""

    def __init__(self, address: str) -> None:
        self.address = address  # as NOTIFY_SOCKET says it
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + address[1:].encode() if address.startswith("@") else address)
        self.got: list[tuple[float, Message]] = []

    def receive(self, timeout: float) -> Message | None:
        """The next message within ``timeout`` seconds, or None."""
        self.sock.settimeout(timeout)
        try:
            message = parse(self.sock.recv(65536))
        except TimeoutError:
            return None
        self.got.append((time.monotonic(), message))
        return message

    def until(self, done: Callable[[Message], bool], within: float) -> Message | None:
        """Receive until a message satisfies ``done``, for at most ``within`` seconds."""
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None and done(message):
                return message
        return None

    def pings(self, within: float, wanted: int) -> int:
        """WATCHDOG=1 messages received, stopping at ``wanted`` or after ``within`` seconds."""
        count = 0
        deadline = time.monotonic() + within
        while count < wanted and (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            count += message is not None and message.get("WATCHDOG") == "1"
        return count

    def gap(self, at_least: float, within: float) -> bool:
        """True once no WATCHDOG=1 came for ``at_least`` seconds, looking for at most ``within`` seconds."""
        deadline = time.monotonic() + within
        last_ping = time.monotonic()
        while time.monotonic() < deadline:
            message = self.receive(max(0.01, last_ping + at_least - time.monotonic()))
            if message is None and time.monotonic() - last_ping >= at_least:
                return True
            if message is not None and message.get("WATCHDOG") == "1":
                last_ping = time.monotonic()
        return False

    def all(self, key: str) -> list[str]:
        return [m[key] for _, m in self.got if key in m]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    lst = Listener(str(tmp_path / "notify"))
    yield lst
    lst.close()


# --- sdnotify on its own -------------------------------------------------------------------------------------


def test_a_path_socket_gets_one_datagram_of_lines(listener: Listener) -> None:
    notifier = Notifier(listener.address)
    assert notifier.send(READY="1", STATUS="OL CHRG\nREADY=1, battery 71 %")
    assert listener.receive(5) == {"READY": "1", "STATUS": "OL CHRG READY=1, battery 71 %"}  # no injected line
    notifier.close()


def test_an_abstract_socket_is_reached_by_its_at_name() -> None:
    lst = Listener(f"@nutbridge-test-{uuid.uuid4().hex}")
    try:
        notifier = Notifier(lst.address)
        assert notifier.send(WATCHDOG="1")
        assert lst.receive(5) == {"WATCHDOG": "1"}
        notifier.close()
    finally:
        lst.close()


def test_the_environment_is_read_once_and_removed(listener: Listener) -> None:
    env = {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid()), "X": "1"}
    notifier = Notifier.from_environment(env)
    assert notifier.address == listener.address and notifier.watchdog == 2.0
    assert env == {"X": "1"}  # children (upsdrvctl, a restart command) never speak for the daemon
    assert Notifier.from_environment({"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "0"}).watchdog is None
    assert Notifier.from_environment({"WATCHDOG_USEC": "many"}).watchdog is None
    assert Notifier.from_environment({"WATCHDOG_USEC": "²"}).watchdog is None  # a digit to str, not to int
    outside = Notifier.from_environment({})
    assert outside.address is None and not outside.send(READY="1")  # outside systemd: a no-op


async def test_a_watchdog_meant_for_another_pid_is_not_pinged(listener: Listener) -> None:
    env = {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": str(os.getpid() + 1)}
    notifier = Notifier.from_environment(env)
    assert notifier.watchdog is None
    async with asyncio.timeout(5):
        await Systemd(notifier).watchdog()  # returns at once
    assert listener.receive(0.5) is None
    notifier.close()


def test_a_failing_socket_is_logged_once_and_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    with caplog.at_level(logging.WARNING, logger="nutbridge.sdnotify"):
        assert not notifier.send(READY="1")
        assert not notifier.send(WATCHDOG="1")
        assert not Notifier("vsock:2:1234").send(READY="1")  # an address form we do not speak
    assert [r.getMessage().split(" failed")[0] for r in caplog.records] == [
        f"notifying systemd at {tmp_path / 'nobody-listens'}",
        "notifying systemd at vsock:2:1234",
    ]
    lst = Listener(str(tmp_path / "nobody-listens"))  # systemd is back
    try:
        with caplog.at_level(logging.INFO, logger="nutbridge.sdnotify"):
            assert notifier.send(WATCHDOG="1")
        assert "works again" in caplog.records[-1].getMessage()
    finally:
        lst.close()
        notifier.close()


def test_values_stay_on_one_line_and_short() -> None:
    assert one_line("a\r\nb\tc\x7f") == "a  b c "
    assert len(one_line("x" * 10_000)) == 400


def test_status_words_say_the_state() -> None:
    good = Snapshot(seq=1, time=0.0, comms=Comms.OK, variables={"ups.status": "OL CHRG"},
                    reading=Reading(time=0.0, battery_charge=71.4, pv_power=88.2))  # fmt: skip
    assert status_words(good) == "OL CHRG, battery 71 %, PV 88 W"
    lost = Snapshot(seq=9, time=1000.0, comms=Comms.LOST, variables={}, error=SourceError("no answer"), silent_for=12)
    assert status_words(lost).startswith("comms lost since ") and status_words(lost).endswith(": no answer")
    failing = Snapshot(seq=2, time=0.0, comms=Comms.FAILING, variables={}, error=SourceError("timeout"))
    assert "NUT keeps the last values: timeout" in status_words(failing)


class FakeProgress:
    """A poll loop whose progress the test decides."""

    def __init__(self) -> None:
        self.stall: str | None = None

    def stalled(self, excused: float = 0.0) -> str | None:
        return self.stall


async def drain(sock: socket.socket) -> list[Message]:
    got = []
    with contextlib.suppress(BlockingIOError):
        while True:
            got.append(parse(sock.recv(65536)))
    return got


async def receive(sock: socket.socket, within: float) -> Message | None:
    try:
        async with asyncio.timeout(within):
            return parse(await asyncio.get_running_loop().sock_recv(sock, 65536))
    except TimeoutError:
        return None


async def test_the_watchdog_pings_only_while_the_loop_progresses(listener: Listener) -> None:
    listener.sock.setblocking(False)
    progress = FakeProgress()
    systemd = Systemd(Notifier(listener.address, watchdog=0.2))
    task = asyncio.get_running_loop().create_task(systemd.watchdog(progress))
    try:
        first = await receive(listener.sock, 5)
        assert first is not None and first["WATCHDOG"] == "1"
        assert first["EXTEND_TIMEOUT_USEC"] == "200000"  # not ready yet: the start timeout follows progress
        await systemd.update(Snapshot(seq=1, time=time.time(), comms=Comms.OK, variables={"ups.status": "OL"},
                                      reading=Reading(time=0.0, battery_charge=50)))  # fmt: skip
        got = [m for _ in range(20) if (m := await receive(listener.sock, 5))]
        after = got[next(i for i, m in enumerate(got) if "READY" in m) + 1 :]
        assert any("WATCHDOG" in m for m in after) and not any("EXTEND_TIMEOUT_USEC" in m for m in after)
        progress.stall = "poll 7 has run for 99 s, past its bound of 15 s"
        await drain(listener.sock)  # what was sent before
        await asyncio.sleep(1.0)  # five ticks
        quiet = await drain(listener.sock)
        assert all("WATCHDOG" not in m for m in quiet), quiet
        assert quiet and quiet[0]["STATUS"].startswith("stalled: poll 7 has run for 99 s")
        progress.stall = None
        back = await receive(listener.sock, 5)
        assert back is not None and back["WATCHDOG"] == "1" and back["STATUS"].startswith("OL, battery 50 %")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        systemd.notifier.close()


# --- what "progress" means to the monitor ---------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Held:
    """A source whose read returns only when the test releases it."""

    info = DeviceInfo(mfr="test", model="held")
    table = TABLE
    timeout = 1.0

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.answered = asyncio.Event()

    def __str__(self) -> str:
        return "held source"

    async def __aenter__(self) -> Held:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def read(self) -> Reading:
        await self.release.wait()
        self.answered.set()  # the poll ends before anyone waiting for this runs
        return Reading(time=0.0, battery_charge=60, pv_power=10.0)

    async def reset(self) -> None:
        return None


async def test_a_long_poll_progresses_until_its_bound_then_stalls() -> None:
    clock, source = FakeClock(), Held()
    monitor = Monitor(source, interval=3600.0, clock=clock)
    assert monitor.stalled() is None and monitor.last_poll_end is None
    task = asyncio.get_running_loop().create_task(monitor.poll())
    await asyncio.sleep(0)  # the poll starts and waits for its answer
    bound = 3600.0 * POLL_SHARE + source.timeout + STALL_SLACK  # its deadline, one timeout, the slack
    clock.now += bound - 1
    assert monitor.stalled() is None  # 54 minutes of legitimate retrying at a one-hour interval
    clock.now += 2
    assert monitor.stalled() == f"poll 1 has run for {bound + 1:.0f} s, past its bound of {bound:.0f} s"
    assert monitor.stalled(excused=2) is None  # the event loop was blocked: not the poll's fault
    source.release.set()
    assert (await task).ok
    assert monitor.stalled() is None and monitor.last_poll_end == clock.now  # a finished poll is progress


async def test_between_polls_the_loop_progresses_until_it_is_overdue() -> None:
    clock, source = FakeClock(), Held()
    source.release.set()
    monitor = Monitor(source, interval=60.0, clock=clock)
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(monitor.run(stop))
    await source.answered.wait()  # the loop has published the poll and waits for the next
    clock.now += 60 + STALL_SLACK - 1  # waiting for the next poll, which is due
    assert monitor.stalled() is None
    clock.now += 2  # the fake clock passed the next poll, but the loop sleeps on the real one
    assert monitor.stalled() == f"the next poll is {STALL_SLACK + 1:.0f} s overdue"
    stop.set()
    async with asyncio.timeout(5):
        await task


def test_the_unit_waits_for_ready_and_watches_the_main_process() -> None:
    lines = (Path(__file__).parent.parent / "systemd" / "nutbridge@.service").read_text().splitlines()
    assert {"Type=notify", "NotifyAccess=main", "WatchdogSec=30s"} <= set(lines)  # verified by test_systemd.py


# --- the real daemon ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def daemon(
    tmp_path: Path, listener: Listener, *args: str, watchdog_usec: int = 1_000_000
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m nutbridge`` on the simulator with NOTIFY_SOCKET and WATCHDOG_USEC set as systemd would."""
    env = {**os.environ, "NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": str(watchdog_usec)}
    env.pop("WATCHDOG_PID", None)
    log = tmp_path / "daemon.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "nutbridge", *args], stdin=subprocess.PIPE, stderr=err, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()  # a hung poll that swallows every cancel: what systemd's stop timeout is for
                proc.wait(timeout=15)
        if proc.stdin:
            proc.stdin.close()


def command(proc: subprocess.Popen[bytes], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(f"{line}\n".encode())
    proc.stdin.flush()


def stopped(proc: subprocess.Popen[bytes], listener: Listener, log: Path) -> None:
    """SIGTERM: STOPPING=1, then exit status 0."""
    proc.send_signal(signal.SIGTERM)
    assert listener.until(lambda m: m.get("STOPPING") == "1", within=20), log.read_text()
    assert proc.wait(timeout=20) == 0, log.read_text()


def test_ready_after_the_first_poll_then_status_pings_and_stopping(tmp_path: Path, listener: Listener) -> None:
    toml = daemon_config(tmp_path, "")
    log = tmp_path / "daemon.log"
    with daemon(tmp_path, listener, "-c", str(toml)) as proc:
        ready = listener.until(lambda m: "READY" in m, within=30)
        assert ready is not None, log.read_text()
        assert ready["READY"] == "1" and ready["STATUS"].startswith("OL"), ready  # with the first poll's words
        assert "battery" in ready["STATUS"] and "PV" in ready["STATUS"] and "last poll" in ready["STATUS"]
        assert listener.pings(within=10, wanted=3) >= 3, log.read_text()  # WATCHDOG_USEC=1 s: a ping every 0.5 s
        stopped(proc, listener, log)
    assert listener.all("READY") == ["1"]  # once
    before = [m for _, m in listener.got[: [m for _, m in listener.got].index(ready)]]
    assert all("EXTEND_TIMEOUT_USEC" in m for m in before if "WATCHDOG" in m)  # the start follows progress
    assert all("EXTEND_TIMEOUT_USEC" not in m for _, m in listener.got[len(before) + 1 :])
    assert all(s.startswith(("starting", "OL", "stopping")) for s in listener.all("STATUS")), listener.all("STATUS")
    assert "Traceback" not in log.read_text()


def test_a_hung_poll_stops_the_pings_until_it_returns(tmp_path: Path, listener: Listener) -> None:
    toml = daemon_config(tmp_path, "")
    log = tmp_path / "daemon.log"
    with daemon(tmp_path, listener, "-c", str(toml)) as proc:
        assert listener.until(lambda m: "READY" in m, within=30), log.read_text()
        command(proc, "hang")  # the simulated read never returns and swallows its cancellation
        # the poll's bound is its deadline (0.45 s at a 0.5 s interval), a 1 s timeout and the slack: then silence
        assert listener.gap(at_least=3, within=40), log.read_text()
        assert proc.poll() is None  # alive, hung: for systemd to restart
        assert any(s.startswith("stalled: poll") for s in listener.all("STATUS")), listener.all("STATUS")
        command(proc, "sun")  # the read returns: the poll ends and the loop goes on
        assert listener.pings(within=20, wanted=1) == 1, log.read_text()
        stopped(proc, listener, log)
    text = log.read_text()
    assert "no more watchdog pings, so systemd restarts nutbridge" in text and "pings resume" in text


def test_a_frozen_event_loop_sends_nothing_and_pings_resume_after(tmp_path: Path, listener: Listener) -> None:
    toml = daemon_config(tmp_path, "")
    log = tmp_path / "daemon.log"
    with daemon(tmp_path, listener, "-c", str(toml)) as proc:
        assert listener.until(lambda m: "READY" in m, within=30), log.read_text()
        assert listener.pings(within=10, wanted=2) == 2
        command(proc, "freeze 4")  # time.sleep on the event loop: no task runs, the watchdog's neither
        assert listener.gap(at_least=3, within=20), log.read_text()
        assert listener.pings(within=10, wanted=3) == 3, log.read_text()
        stopped(proc, listener, log)


def test_the_one_shot_poll_never_notifies(tmp_path: Path, listener: Listener) -> None:
    toml = daemon_config(tmp_path, "")
    with daemon(tmp_path, listener, "-c", str(toml), "-s") as proc:
        assert proc.wait(timeout=60) == 0, (tmp_path / "daemon.log").read_text()
    assert listener.receive(0.5) is None  # ExecStartPre: only the main daemon says READY


def test_serving_without_polls_is_ready_once_it_listens(tmp_path: Path, listener: Listener) -> None:
    port = free_port()
    (tmp_path / "log").mkdir()
    log = tmp_path / "daemon.log"
    args = ("--no-poll", "--data-dir", str(tmp_path / "log"), "--api-listen", f"127.0.0.1:{port}")
    with daemon(tmp_path, listener, *args) as proc:
        ready = listener.until(lambda m: "READY" in m, within=30)
        assert ready is not None and ready["STATUS"].startswith("serving"), log.read_text()
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # listening by then
        assert listener.pings(within=10, wanted=3) >= 3  # no polls to wait for: the loop runs, that is progress
        stopped(proc, listener, log)
