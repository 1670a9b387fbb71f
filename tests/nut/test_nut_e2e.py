"""End to end: simulator → nutbridge → port file → real dummy-ups → real upsd → upsc / upsmon.

Every test builds its own private NUT stack (upsd keeps FSD until it restarts), on 127.0.0.1 only, and
stops every process it started by PID. Waits are bounded polls; the one fixed wait is in
``test_no_shutdown_when_comms_lost_on_line``, which checks that something does *not* happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nutbridge.nut import version
from nutbridge.nut.version import NutVersion
from nutbridge.server.app import Sidecar, tls_context
from tests.helpers.envoy import SERIAL, Gateway, token
from tests.nut_stack import Nutbridge, NutStack, Simulator, hold, require_nut, start_simulator, wait_for

pytestmark = pytest.mark.nut

require_nut()

TIMEOUT = 30.0  # for anything that should take a few seconds; the machine may be busy
SHUTDOWN_TIMEOUT = 45.0  # upsmon: POLLFREQ + DEADTIME + HOSTSYNC + FINALDELAY, with plenty of slack
DEADTIME = 6
NOT_CONNECTED = "Error: Driver not connected"
HAND_WRITTEN = "# my note: kept by nutbridge\nbattery.charge.low: 25\n"


@dataclass
class Rig:
    """One test's processes: a NUT stack, simulators and nutbridge; closed in reverse order of start."""

    folder: Path
    nut: NutStack
    closers: contextlib.ExitStack
    sims: list[Simulator] = field(default_factory=list)
    bridge: Nutbridge | None = None

    def simulator(self, mode: str, *, port: int = 0, soc: float | None = None) -> Simulator:
        """Start a simulator in ``mode`` (on ``port``, or a free one)."""
        return start_simulator(self, mode, port=port, soc=soc)

    def nutbridge(self, sim: Simulator, *, config_file: bool, grace: float | None = None) -> Nutbridge:
        """Start nutbridge on ``sim``: with command-line flags, or with a TOML file. Either way it finds its UPS
        in the stack's ups.conf and restarts the driver itself after a comms loss."""
        if config_file:
            toml = self.folder / "nutbridge.toml"
            toml.write_text(
                f'[source]\nkind = "tracer"\nurl = "tcp://127.0.0.1:{sim.port}"\n\n'
                "[monitor]\npoll_interval = 1\n"
                + (f"nocomms_grace = {grace}\n" if grace is not None else "")
                + f'\n[nut]\nport_file = "{self.nut.port_file}"\n'
            )
            args = ["-c", str(toml), "-v"]
        else:
            assert grace is None, "the grace is set in the TOML file"
            args = ["--source", f"tcp://127.0.0.1:{sim.port}", "--port-file", str(self.nut.port_file)]
            args += ["--poll-interval", "1", "-v"]
        self.bridge = Nutbridge(self.folder, args, env=self.nut.env)
        self.closers.callback(self.bridge.stop)
        self.bridge.start()
        return self.bridge

    def diagnostics(self) -> str:
        """nutbridge's log, the simulators' output, upsc and the port file: for every failure message."""
        parts = [self.bridge.describe()] if self.bridge else ["--- nutbridge not started"]
        parts += [sim.describe() for sim in self.sims]
        parts.append(self.nut.describe())
        return "\n".join(parts)

    def wait_status(self, accept: Callable[[list[str]], bool], what: str, timeout: float = TIMEOUT) -> list[str]:
        """Wait until upsc's ups.status words satisfy ``accept``."""
        return wait_for(
            self.nut.status_words, accept, timeout=timeout, what=f"upsc ups.status {what}", details=self.diagnostics
        )

    def wait_upsc(self, var: str, value: str) -> None:
        """Wait until upsc answers ``value`` for ``var``."""
        wait_for(lambda: self.nut.upsc(var), lambda out: out == value, timeout=TIMEOUT,
                 what=f"upsc {var} to be {value!r}", details=self.diagnostics)  # fmt: skip

    def wait_upsc_error(self, error: str = NOT_CONNECTED) -> None:
        """Wait until upsc fails with ``error``."""
        wait_for(self.nut.upsc, lambda out: out == error, timeout=TIMEOUT, what=repr(error), details=self.diagnostics)

    def wait_nocomms(self) -> None:
        """Wait until nutbridge has renamed the port file to ``-nocomms``."""
        wait_for(
            lambda: (self.nut.port_file.exists(), self.nut.nocomms_file.exists()),
            lambda seen: seen == (False, True),
            timeout=TIMEOUT,
            what=f"the port file to be renamed to {self.nut.nocomms_file.name} (value: (file exists, -nocomms exists))",
            details=self.diagnostics,
        )

    def wait_shutdown(self) -> None:
        """Wait until upsmon has run SHUTDOWNCMD."""
        wait_for(
            self.nut.shutdown_ran,
            bool,
            timeout=SHUTDOWN_TIMEOUT,
            what="upsmon to run SHUTDOWNCMD",
            details=self.diagnostics,
        )

    def wait_notified(self, event: str) -> None:
        """Wait until upsmon has run NOTIFYCMD for ``event``."""
        wait_for(
            lambda: self.nut.notified(event),
            bool,
            timeout=TIMEOUT,
            what=f"upsmon to notify {event}",
            details=self.diagnostics,
        )

    def assert_bridge_running(self) -> None:
        """nutbridge must never exit by itself."""
        assert self.bridge is not None
        assert self.bridge.running, f"nutbridge exited\n{self.diagnostics()}"


@pytest.fixture
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """A fresh, started NUT stack (dummy-ups + upsd; upsmon on request) and room for simulators and nutbridge."""
    folder = tmp_path_factory.mktemp("nut")  # short: the driver's unix socket path must stay under 108 bytes
    with contextlib.ExitStack() as closers:
        nut = NutStack(folder, deadtime=DEADTIME)
        closers.callback(nut.stop)
        nut.start()
        yield Rig(folder=folder, nut=nut, closers=closers)


def number(text: str) -> float:
    """upsc's answer as a number, failing with the text when it is not one."""
    try:
        return float(text)
    except ValueError:
        raise AssertionError(f"expected a number from upsc, got {text!r}") from None


def test_values_arrive_and_hand_written_lines_stay(rig: Rig) -> None:
    rig.nut.port_file.write_text(HAND_WRITTEN)
    sim = rig.simulator("sun")
    rig.nutbridge(sim, config_file=False)

    words = rig.wait_status(lambda w: "OL" in w and "CHRG" in w, "to contain OL and CHRG (sun)")
    assert "OB" not in words, rig.diagnostics()
    wait_for(
        lambda: rig.nut.upsc("ups.mfr"),
        lambda out: out == "EPsolar Tech co., Ltd",
        timeout=TIMEOUT,
        what="upsc ups.mfr to be the simulator's vendor",
        details=rig.diagnostics,
    )
    charge = number(rig.nut.upsc("battery.charge"))
    assert 0 <= charge <= 100, rig.diagnostics()
    assert number(rig.nut.upsc("input.voltage")) > 0, rig.diagnostics()

    text = rig.nut.port_file.read_text()
    assert text.startswith(HAND_WRITTEN), f"hand-written lines not kept verbatim at the top:\n{text}"
    assert text.count("battery.charge.low:") == 1, text
    assert rig.nut.upsc("battery.charge.low") == "25", rig.diagnostics()
    rig.assert_bridge_running()


def test_simulator_changes_reach_upsc(rig: Rig) -> None:
    sim = rig.simulator("sun")
    rig.nutbridge(sim, config_file=False)
    rig.wait_status(lambda w: "OL" in w and "OB" not in w, "to show OL (sun)")

    sim.command("night")
    words = rig.wait_status(lambda w: "OB" in w and "DISCHRG" in w, "to show OB DISCHRG (night)")
    assert "OL" not in words, rig.diagnostics()
    assert "LB" not in words, rig.diagnostics()

    sim.command("soc 5")
    words = rig.wait_status(lambda w: "LB" in w, "to show LB (night, battery 5 %)")
    assert "OB" in words, rig.diagnostics()
    assert number(rig.nut.upsc("battery.charge")) == 5, rig.diagnostics()
    rig.assert_bridge_running()


def test_dead_controller_hides_port_file_and_recovers(rig: Rig) -> None:
    sim = rig.simulator("sun")
    bridge = rig.nutbridge(sim, config_file=True, grace=3)
    rig.wait_status(lambda w: "OL" in w, "to show OL (sun)")
    first_driver = rig.nut.driver_pid()
    assert first_driver is not None, rig.diagnostics()

    sim.kill()  # SIGKILL: the controller just dies
    rig.wait_nocomms()
    rig.wait_upsc_error()
    rig.assert_bridge_running()
    # Let several polls fail: the loss must still be logged once, not once per poll.
    wait_for(
        lambda: bridge.stdout().count("nocomms:"),
        lambda n: n >= 3,
        timeout=TIMEOUT,
        what="three failed polls while in nocomms (nutbridge -v lines)",
        details=rig.diagnostics,
    )
    assert rig.nut.driver_pid() is None, f"dummy-ups should have exited\n{rig.diagnostics()}"

    rig.simulator("sun", port=sim.port)  # the controller comes back on the same address
    wait_for(
        lambda: (rig.nut.port_file.exists(), rig.nut.nocomms_file.exists()),
        lambda seen: seen == (True, False),
        timeout=TIMEOUT,
        what="the port file to be renamed back (value: (file exists, -nocomms exists))",
        details=rig.diagnostics,
    )
    rig.wait_status(lambda w: "OL" in w or "OB" in w, "to show OL or OB again after nutbridge restarted the driver")
    rig.assert_bridge_running()
    second_driver = rig.nut.driver_pid()
    assert second_driver is not None, rig.diagnostics()
    assert second_driver != first_driver, rig.diagnostics()

    # Each state change is logged once, however many polls failed in between.
    log = bridge.stderr().splitlines()
    expected = {
        "first failure": r"WARNING poll failed; NUT keeps the last values for up to 3 s",
        "lost contact": r"ERROR lost contact after",
        "rename": r"ERROR port file renamed to .*-nocomms",
        "contact restored": r"WARNING contact with .* restored after",
        "port file restored": r"WARNING port file .* restored",
        "driver restarted": r"INFO driver restart '.*upsdrvctl start solar' done",
    }
    for what, pattern in expected.items():
        hits = [line for line in log if re.search(pattern, line)]
        assert len(hits) == 1, f"{what}: expected one log line, got {len(hits)}\n{rig.diagnostics()}"
    others = [
        line
        for line in log
        if re.search(r" (ERROR|WARNING) ", line) and not any(re.search(p, line) for p in expected.values())
    ]
    assert not others, f"unexpected errors or warnings: {others}\n{rig.diagnostics()}"

    assert bridge.stop() == 0, rig.diagnostics()  # SIGTERM: a clean exit
    leftovers = sorted(p.name for p in rig.nut.data.iterdir())
    assert leftovers == [rig.nut.port_file.name], f"temp or -nocomms files left behind: {leftovers}"


def test_upsmon_shuts_down_on_low_battery(rig: Rig) -> None:
    sim = rig.simulator("sun")
    rig.nutbridge(sim, config_file=True)
    rig.wait_status(lambda w: "OL" in w, "to show OL (sun)")
    rig.nut.start_upsmon()
    assert not rig.nut.shutdown_ran(), rig.diagnostics()

    sim.command("lowbatt")
    rig.wait_status(lambda w: "OB" in w and "LB" in w, "to show OB LB (lowbatt)")
    rig.wait_shutdown()
    rig.wait_notified("LOWBATT")  # NOTIFYCMD runs in a forked child: it may land just after SHUTDOWNCMD
    assert rig.nut.powerdown_flag.exists(), f"upsmon did not create POWERDOWNFLAG\n{rig.diagnostics()}"
    assert "FSD" in rig.nut.status_words(), rig.diagnostics()
    rig.assert_bridge_running()


def test_upsmon_shuts_down_when_comms_lost_on_battery(rig: Rig) -> None:
    sim = rig.simulator("night", soc=80)
    rig.nutbridge(sim, config_file=True)
    words = rig.wait_status(lambda w: "OB" in w, "to show OB (night)")
    assert "LB" not in words, rig.diagnostics()
    rig.nut.start_upsmon()
    rig.wait_notified("ONBATT")  # upsmon has seen OB
    assert not rig.nut.shutdown_ran(), f"upsmon shut down on OB alone\n{rig.diagnostics()}"

    sim.command("silent")  # the controller stops answering, for good: with the default grace (10 s)
    rig.wait_nocomms()
    rig.wait_shutdown()  # after DEADTIME (at once on 2.8.1/2.8.2) upsmon treats a dead UPS last seen OB as OB LB
    rig.wait_notified("SHUTDOWN")
    events = [line.split()[0] for line in rig.nut.notifications()]
    assert "COMMBAD" in events, rig.diagnostics()
    assert events.index("COMMBAD") < events.index("SHUTDOWN"), rig.diagnostics()
    rig.assert_bridge_running()


def test_no_shutdown_when_comms_lost_on_line(rig: Rig) -> None:
    sim = rig.simulator("sun")
    rig.nutbridge(sim, config_file=True, grace=2)
    rig.wait_status(lambda w: "OL" in w and "OB" not in w, "to show OL (sun)")
    rig.nut.start_upsmon()

    sim.kill()
    rig.wait_nocomms()
    rig.wait_upsc_error()
    rig.wait_notified("COMMBAD")  # upsmon has noticed the lost driver
    # The one fixed wait: nothing may happen for well past DEADTIME.
    hold(
        lambda: (rig.nut.shutdown_ran(), rig.nut.upsmon is not None and rig.nut.upsmon.poll() is None),
        lambda seen: seen == (False, True),
        duration=max(20, 3 * DEADTIME),
        what="no SHUTDOWNCMD and upsmon still running (value: (shutdown ran, upsmon running))",
        details=rig.diagnostics,
    )
    assert rig.nut.upsc("ups.status") == NOT_CONNECTED, rig.diagnostics()
    events = {line.split()[0] for line in rig.nut.notifications()}
    assert not events & {"ONBATT", "LOWBATT", "FSD", "SHUTDOWN"}, rig.diagnostics()
    rig.assert_bridge_running()


def test_a_five_second_glitch_on_battery_never_reaches_upsmon(rig: Rig) -> None:
    """The default grace rides out a glitch at a 1 s poll interval: a spurious shutdown is the worst failure."""
    sim = rig.simulator("night", soc=80)
    bridge = rig.nutbridge(sim, config_file=True)  # default nocomms_grace
    rig.wait_status(lambda w: "OB" in w, "to show OB (night)")
    rig.nut.start_upsmon()
    rig.wait_notified("ONBATT")
    sim.command("silent")
    hold(
        lambda: (rig.nut.port_file.exists(), rig.nut.upsc("ups.status") != NOT_CONNECTED, rig.nut.shutdown_ran()),
        lambda seen: seen == (True, True, False),
        duration=5,
        what="the port file in place, the driver connected and no shutdown during the glitch",
        details=rig.diagnostics,
    )
    sim.command("night")
    wait_for(
        lambda: bridge.log_lines("restored after"),
        bool,
        timeout=TIMEOUT,
        what="nutbridge to log the contact restored",
        details=rig.diagnostics,
    )
    hold(
        lambda: (rig.nut.shutdown_ran(), rig.nut.upsc("ups.status") != NOT_CONNECTED),
        lambda seen: seen == (False, True),
        duration=DEADTIME + 2,
        what="no shutdown after the glitch, past DEADTIME",
        details=rig.diagnostics,
    )
    events = {line.split()[0] for line in rig.nut.notifications()}
    assert not events & {"COMMBAD", "NOCOMM", "LOWBATT", "FSD", "SHUTDOWN"}, rig.diagnostics()
    assert len(bridge.log_lines("poll failed; NUT keeps the last values")) == 1, rig.diagnostics()
    assert not bridge.log_lines("renamed to"), rig.diagnostics()


def test_a_fault_shows_in_ups_alarm_and_clears(rig: Rig) -> None:
    """On the machine's own NUT, in the form that version reads (ups.alarm line or ALARM instruction)."""
    sim = rig.simulator("sun")
    rig.nutbridge(sim, config_file=False)
    rig.wait_status(lambda w: "OL" in w, "to show OL (sun)")
    sim.command("fault")
    wait_for(
        lambda: rig.nut.upsc("ups.alarm"),
        lambda out: "load short circuit" in out,
        timeout=TIMEOUT,
        what="upsc ups.alarm to name the fault",
        details=rig.diagnostics,
    )
    installed = version.detect()
    if installed is None or installed != NutVersion(2, 8, 3):  # 2.8.3's ALARM token would never clear
        assert "ALARM" in rig.nut.status_words(), rig.diagnostics()
    sim.command("sun")
    rig.wait_status(lambda w: "ALARM" not in w and "OL" in w, "to drop ALARM once the fault is gone")
    wait_for(
        lambda: rig.nut.upsc("ups.alarm"),
        lambda out: "load short circuit" not in out,
        timeout=TIMEOUT,
        what="upsc ups.alarm to clear",
        details=rig.diagnostics,
    )
    rig.assert_bridge_running()


def test_a_port_file_from_the_future_is_still_read(rig: Rig) -> None:
    """A Pi without RTC boots with its clock behind the file's mtime: NUT must get fresh values, not the
    OB LB from before the boot (which would shut the box down again)."""
    future = int(time.time()) + 86400
    rig.nut.port_file.write_text("ups.status: OB LB\n")
    os.utime(rig.nut.port_file, (future, future))
    rig.wait_status(lambda w: w == ["OB", "LB"], "to show the stale OB LB from the file")
    sim = rig.simulator("sun")
    bridge = rig.nutbridge(sim, config_file=False)
    rig.wait_status(lambda w: "OL" in w and "LB" not in w, "to show OL from nutbridge despite the future mtime")
    assert bridge.log_lines("ahead of the clock"), rig.diagnostics()
    # while running, NTP steps the clock back a day: the file's mtime is ahead again, and changes still reach NUT
    again = int(time.time()) + 86400
    os.utime(rig.nut.port_file, (again, again))
    sim.command("night")
    rig.wait_status(lambda w: "OB" in w, "to show OB after the clock stepped back")
    assert int(rig.nut.port_file.stat().st_mtime) < again  # written with the clock's time, not one past the file's
    rig.assert_bridge_running()


@contextlib.contextmanager
def gateway_in_a_thread(gw: Gateway, certificate: tuple[Path, Path]) -> Iterator[int]:
    """The fake Enphase gateway on an HTTPS loopback port, served by its own event loop in a thread (the test
    waits on upsc with blocking calls)."""
    started: queue.Queue[int] = queue.Queue()
    loop = asyncio.new_event_loop()
    done = asyncio.Event()

    async def serve() -> None:
        cert, key = certificate
        async with Sidecar(gw.app(), "127.0.0.1", 0, tls=tls_context(cert, key)) as server:
            started.put(server.port)
            await done.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        yield started.get(timeout=10)
    finally:
        loop.call_soon_threadsafe(done.set)
        thread.join(timeout=10)
        loop.close()


def ours(words: list[str]) -> list[str]:
    """ups.status as nutbridge wrote it: NUT 2.8.5's dummy-ups adds DISCHRG itself when battery.charge fell since
    its last read and the file says neither CHRG nor DISCHRG (drivers/dstate.c), and keeps it until the file
    changes again."""
    installed = version.detect()
    adds = installed is not None and installed >= NutVersion(2, 8, 5)
    return [word for word in words if not (adds and word == "DISCHRG")]


def test_an_enphase_gateway_reaches_upsc_on_grid_islanded_and_low(rig: Rig, certificate: tuple[Path, Path]) -> None:
    gw = Gateway()
    with gateway_in_a_thread(gw, certificate) as port:
        state = rig.folder / "envoy-state"
        state.mkdir(mode=0o700)
        token_file = state / "enphase.token"
        token_file.write_text(token())  # a token in hand, as enphase-monitor users have: no cloud login needed
        token_file.chmod(0o600)
        config = rig.folder / "envoy.toml"
        config.write_text(
            f'[source]\nkind = "envoy"\nhost = "127.0.0.1:{port}"\nserial = "{SERIAL}"\n'
            f'username = "me@example.org"\npassword = "secret pw"\nstate_dir = "{state}"\n'
            f'[monitor]\npoll_interval = 1\n[nut]\nport_file = "{rig.nut.port_file}"\n'
        )
        config.chmod(0o600)
        rig.bridge = Nutbridge(rig.folder, ["-c", str(config), "-v"], env=rig.nut.env)
        rig.closers.callback(rig.bridge.stop)
        rig.bridge.start()

        rig.wait_status(lambda w: w == ["OL"], "to be OL (relay closed)")
        for var, value in (("battery.charge", "100"), ("input.realpower", "-1405.1"), ("output.realpower", "2210.6"),
                           ("battery.runtime", "14656"), ("ups.load", "28.7"), ("ups.firmware", "D8.2.4378"),
                           ("device.serial", SERIAL)):  # fmt: skip
            rig.wait_upsc(var, value)
        gw.relay, gw.soc = "open", "50"
        rig.wait_status(lambda w: ours(w) == ["OB"], "to be OB (the grid is gone)")
        rig.wait_upsc("battery.charge", "50")
        gw.soc = "12"
        rig.wait_status(lambda w: ours(w) == ["OB", "LB"], "to be OB LB (12 % is below 20 %)")
        rig.assert_bridge_running()
        rig.bridge.stop()  # before the gateway goes: its connection closes from nutbridge's side
