"""Comms loss as NUT means it, in driver mode: simulator → nutbridge-driver (started by upsdrvctl) → real upsd →
upsc and upsmon.

A device that stops answering is DATASTALE after ``nocomms_grace`` (a shorter glitch never reaches upsmon), and
upsmon shuts a host on battery down as it does for any stale UPS; the moment the device answers again the data is
good, from the same driver process. A driver that hangs is stale for upsd after its MAXAGE, never old values
served on. Every process is private to the test (tests/nut_stack.py) and stopped by PID; the fixed waits
(``hold``) check that something does *not* happen.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.nut_stack import (
    DriverModeStack,
    Simulator,
    hold,
    kill_pid,
    pid_alive,
    require_nut,
    start_simulator,
    wait_for,
)

pytestmark = pytest.mark.nut

require_nut()

TIMEOUT = 30.0  # for anything that should take a few seconds; the machine may be busy
SHUTDOWN_TIMEOUT = 60.0  # nocomms_grace (10 s) + DEADTIME + POLLFREQ + HOSTSYNC, with plenty of slack
DEADTIME = 6
MAXAGE = 6  # upsd's wait for a silent driver, low to keep the hung-driver test short (upsd's default: 15 s)
STALE = "Error: Data stale"


@dataclass
class Rig:
    """One test's processes: simulators and the driver-mode NUT stack; closed in reverse order of start."""

    folder: Path
    closers: contextlib.ExitStack
    sims: list[Simulator] = field(default_factory=list)
    stack: DriverModeStack | None = None

    def simulator(self, mode: str, *, port: int = 0, soc: float | None = None) -> Simulator:
        """Start a simulator in ``mode`` (on ``port``, or a free one)."""
        return start_simulator(self, mode, port=port, soc=soc)

    def start(self, sim: Simulator, *, grace: float | None = None, maxage: int | None = None) -> DriverModeStack:
        """upsdrvctl starts nutbridge-driver on ``sim``, then upsd; wait until upsc reads the driver."""
        stack = DriverModeStack(
            self.folder / "nut", port=f"tcp://127.0.0.1:{sim.port}", grace=grace, maxage=maxage, deadtime=DEADTIME
        )
        self.stack = stack
        self.closers.callback(stop_stack, stack)
        stack.start()
        return stack

    @property
    def nut(self) -> DriverModeStack:
        assert self.stack is not None, "start the stack first"
        return self.stack

    def diagnostics(self) -> str:
        """The simulators' output, upsc and upsmon's log: for every failure message."""
        parts = [sim.describe() for sim in self.sims]
        parts.append(self.nut.describe() if self.stack else "--- NUT stack not started")
        return "\n".join(parts)

    def wait_status(self, accept: Callable[[list[str]], bool], what: str) -> list[str]:
        """Wait until upsc's ups.status words satisfy ``accept``."""
        return wait_for(
            self.nut.status_words, accept, timeout=TIMEOUT, what=f"upsc ups.status {what}", details=self.diagnostics
        )

    def wait_stale(self) -> None:
        """Wait until upsd calls the data stale."""
        wait_for(self.nut.upsc, lambda out: out == STALE, timeout=SHUTDOWN_TIMEOUT, what=repr(STALE),
                 details=self.diagnostics)  # fmt: skip

    def wait_shutdown(self) -> None:
        """Wait until upsmon has run SHUTDOWNCMD."""
        wait_for(self.nut.shutdown_ran, bool, timeout=SHUTDOWN_TIMEOUT, what="upsmon to run SHUTDOWNCMD",
                 details=self.diagnostics)  # fmt: skip

    def wait_notified(self, event: str) -> None:
        """Wait until upsmon has run NOTIFYCMD for ``event``."""
        wait_for(lambda: self.nut.notified(event), bool, timeout=TIMEOUT, what=f"upsmon to notify {event}",
                 details=self.diagnostics)  # fmt: skip

    def events(self) -> list[str]:
        """The NOTIFYCMD events so far, in order."""
        return [line.split()[0] for line in self.nut.notifications()]

    def driver(self) -> int:
        """The running driver's PID."""
        pid = self.nut.driver_pid()
        assert pid is not None, f"nutbridge-driver is not running\n{self.diagnostics()}"
        return pid


def stop_stack(stack: DriverModeStack) -> None:
    """The driver first (woken if a test stopped it: a stopped process keeps SIGTERM pending), then the rest."""
    pid = stack.driver_pid()
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        kill_pid(pid)
    stack.stop()


@pytest.fixture
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    folder = tmp_path_factory.mktemp("drv")  # short: the driver socket's path must stay under 108 bytes
    with contextlib.ExitStack() as closers:
        yield Rig(folder=folder, closers=closers)


def test_a_five_second_glitch_on_battery_never_reaches_upsmon(rig: Rig) -> None:
    """The default grace rides out a glitch at a 1 s poll interval: a spurious shutdown is the worst failure."""
    sim = rig.simulator("night", soc=80)
    nut = rig.start(sim)  # default nocomms_grace
    rig.wait_status(lambda w: "OB" in w, "to show OB (night)")
    driver = rig.driver()
    nut.start_upsmon()
    rig.wait_notified("ONBATT")

    sim.command("silent")
    hold(
        lambda: (nut.upsc("ups.status").split()[:1], nut.shutdown_ran()),
        lambda seen: seen == (["OB"], False),
        duration=5,
        what="upsc to show OB (not stale) and no shutdown during the glitch",
        details=rig.diagnostics,
    )
    sim.command("night")
    hold(
        lambda: (nut.shutdown_ran(), nut.upsc("ups.status").split()[:1]),
        lambda seen: seen == (False, ["OB"]),
        duration=DEADTIME + 2,
        what="no shutdown and OB after the glitch, past DEADTIME",
        details=rig.diagnostics,
    )
    assert not set(rig.events()) & {"COMMBAD", "NOCOMM", "LOWBATT", "FSD", "SHUTDOWN"}, rig.diagnostics()
    assert rig.driver() == driver, rig.diagnostics()


def test_a_loss_on_battery_is_stale_after_the_grace_and_upsmon_shuts_down(rig: Rig) -> None:
    sim = rig.simulator("night", soc=80)
    nut = rig.start(sim)  # default nocomms_grace
    words = rig.wait_status(lambda w: "OB" in w, "to show OB (night)")
    assert "LB" not in words, rig.diagnostics()
    driver = rig.driver()
    nut.start_upsmon()
    rig.wait_notified("ONBATT")
    assert not nut.shutdown_ran(), f"upsmon shut down on OB alone\n{rig.diagnostics()}"

    sim.command("silent")  # the controller stops answering, for good
    rig.wait_stale()
    rig.wait_shutdown()  # upsmon treats a stale UPS last seen OB as OB LB
    rig.wait_notified("SHUTDOWN")
    events = rig.events()
    assert "COMMBAD" in events, rig.diagnostics()
    assert events.index("COMMBAD") < events.index("SHUTDOWN"), rig.diagnostics()
    assert rig.driver() == driver, f"the driver must ride out the loss, not exit\n{rig.diagnostics()}"


def test_a_loss_on_line_power_shuts_nothing_down_and_fresh_values_come_back(rig: Rig) -> None:
    sim = rig.simulator("sun")
    nut = rig.start(sim, grace=2)
    rig.wait_status(lambda w: "OL" in w and "OB" not in w, "to show OL (sun)")
    driver = rig.driver()
    nut.start_upsmon()

    sim.kill()  # SIGKILL: the controller just dies
    rig.wait_stale()
    rig.wait_notified("COMMBAD")
    hold(  # stale, never the last values, and nothing shut down, for well past DEADTIME
        lambda: (nut.upsc("ups.status"), nut.shutdown_ran(), nut.upsmon is not None and nut.upsmon.poll() is None),
        lambda seen: seen == (STALE, False, True),
        duration=max(20, 3 * DEADTIME),
        what="upsc stale, no SHUTDOWNCMD and upsmon running (value: (ups.status, shutdown ran, upsmon running))",
        details=rig.diagnostics,
    )
    assert not set(rig.events()) & {"ONBATT", "LOWBATT", "FSD", "SHUTDOWN"}, rig.diagnostics()

    rig.simulator("night", port=sim.port, soc=80)  # back on the same address, and now on battery: fresh values
    rig.wait_status(lambda w: "OB" in w, "to show the device's new state (OB) once it answers again")
    rig.wait_notified("COMMOK")
    assert rig.driver() == driver, f"nothing may restart the driver\n{rig.diagnostics()}"
    assert not nut.shutdown_ran(), rig.diagnostics()


def test_a_hung_driver_is_stale_for_upsd_and_upsmon_shuts_down_on_battery(rig: Rig) -> None:
    sim = rig.simulator("night", soc=80)
    nut = rig.start(sim, maxage=MAXAGE)
    rig.wait_status(lambda w: "OB" in w, "to show OB (night)")
    driver = rig.driver()
    nut.start_upsmon()
    rig.wait_notified("ONBATT")

    os.kill(driver, signal.SIGSTOP)  # hung: the socket stays open, nothing answers upsd's PINGs
    try:
        rig.wait_stale()
        rig.wait_shutdown()
        assert "COMMBAD" in rig.events(), rig.diagnostics()
    finally:
        os.kill(driver, signal.SIGCONT)
    # awake again: its PONGs reach upsd and the data is good again (FSD is upsmon's, kept by upsd)
    rig.wait_status(lambda w: "OB" in w, "to show OB again once the driver answers")
    assert pid_alive(driver), rig.diagnostics()


def test_a_fault_shows_in_ups_alarm_and_clears(rig: Rig) -> None:
    sim = rig.simulator("sun")
    nut = rig.start(sim)
    rig.wait_status(lambda w: "OL" in w, "to show OL (sun)")
    sim.command("fault")
    wait_for(lambda: nut.upsc("ups.alarm"), lambda out: "load short circuit" in out, timeout=TIMEOUT,
             what="upsc ups.alarm to name the fault", details=rig.diagnostics)  # fmt: skip
    assert "ALARM" in nut.status_words(), rig.diagnostics()  # the driver's own ups.status, on every NUT version
    sim.command("sun")
    rig.wait_status(lambda w: "ALARM" not in w and "OL" in w, "to drop ALARM once the fault is gone")
    wait_for(lambda: nut.upsc("ups.alarm"), lambda out: "load short circuit" not in out, timeout=TIMEOUT,
             what="upsc ups.alarm to clear", details=rig.diagnostics)  # fmt: skip
