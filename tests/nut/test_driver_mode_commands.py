"""Driver mode's commands end to end: upsdrvctl starts nutbridge-driver on the built-in simulator, and NUT's own
upscmd and upsrw (as upsd.users' admin, waiting for the driver's TRACKING answer) switch the simulated Tracer's
load and set battery.charge.low, which a restarted driver still has; ups.conf's override is not writable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nut_stack import START_TIMEOUT, UPS, UPSDRVCTL, DriverModeStack, require_nut, wait_for

pytestmark = pytest.mark.nut

require_nut()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DriverModeStack]:
    with DriverModeStack(tmp_path).running() as nut:
        yield nut


def test_upscmd_switches_the_simulated_load_off_and_on(stack: DriverModeStack) -> None:
    listed = stack.run(["upscmd", "-l", stack.address])
    assert "load.off" in listed.stdout and "load.on" in listed.stdout, listed.stdout + listed.stderr
    done = stack.admin("upscmd", stack.address, "load.off")
    assert done.returncode == 0 and "SUCCESS" in done.stderr, done.stdout + done.stderr  # the driver's TRACKING
    wait_for(lambda: stack.upsc("output.realpower"), lambda out: out == "0.0", timeout=START_TIMEOUT,
             what="the next poll to see the load off", details=stack.describe)  # fmt: skip
    done = stack.admin("upscmd", stack.address, "load.on")
    assert done.returncode == 0 and "SUCCESS" in done.stderr, done.stdout + done.stderr
    wait_for(lambda: stack.upsc("output.realpower"), lambda out: out not in ("0.0", ""), timeout=START_TIMEOUT,
             what="the next poll to see the load on again", details=stack.describe)  # fmt: skip


def test_upsrw_sets_charge_low_and_a_restarted_driver_keeps_it(stack: DriverModeStack) -> None:
    listed = stack.run(["upsrw", stack.address])
    assert "battery.charge.low" in listed.stdout, listed.stdout + listed.stderr
    done = stack.admin("upsrw", "-s", "battery.charge.low=35", stack.address)
    assert done.returncode == 0 and "SUCCESS" in done.stderr, done.stdout + done.stderr
    assert stack.upsc("battery.charge.low") == "35"
    refused = stack.admin("upsrw", "-s", "battery.charge.low=abc", stack.address)
    assert "SUCCESS" not in refused.stderr, refused.stdout + refused.stderr
    stopped = stack.run([str(UPSDRVCTL), "-u", "root", "stop", UPS])
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    wait_for(stack.upsc, lambda out: out == "Error: Driver not connected", timeout=START_TIMEOUT,
             what="upsd to see the driver gone", details=stack.describe)  # fmt: skip
    stack.start_driver()
    wait_for(lambda: stack.upsc("battery.charge.low"), lambda out: out == "35", timeout=START_TIMEOUT,
             what="the restarted driver's battery.charge.low", details=stack.describe)  # fmt: skip


def test_an_override_in_ups_conf_wins_over_upsrw(tmp_path: Path) -> None:
    with DriverModeStack(tmp_path, overrides={"battery.charge.low": "25"}).running() as stack:
        assert stack.upsc("battery.charge.low") == "25"
        assert "battery.charge.low" not in stack.run(["upsrw", stack.address]).stdout
        done = stack.admin("upsrw", "-s", "battery.charge.low=35", stack.address)
        assert done.returncode != 0 and "SUCCESS" not in done.stderr, done.stdout + done.stderr
        assert stack.upsc("battery.charge.low") == "25"
