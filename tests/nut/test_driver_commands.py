"""What upscmd and upsrw reach in driver mode, without upsd: load.off/load.on switch the simulated Tracer's load
through the one LoadSwitch; a source without a load lists no command; upsrw's battery.charge.low is checked, kept
in its file for the next start, and never beats ups.conf's override."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from nutbridge.config import Config
from nutbridge.consumers import DriverSide, Wiring, nut_view
from nutbridge.daemon import hand_settings
from nutbridge.devices.load_switch import LoadSwitch
from nutbridge.devices.powerwall.source import PowerwallSource
from nutbridge.devices.tracer.nut import TABLE
from nutbridge.nut.driver_commands import DriverSettings, load_commands
from nutbridge.nut.driver_socket import DriverSocket
from nutbridge.nut.driver_state import CmdStatus, SetStatus
from nutbridge.nut.variables import setting_names
from nutbridge.nut.version import Dialect
from nutbridge.simulator.source import SimulatedSource

SETTINGS = setting_names(TABLE)


def driver_socket(tmp_path: Path, switch: LoadSwitch | None, stored: DriverSettings | None = None) -> DriverSocket:
    """NUT's view as the daemon builds it in driver mode (not entered: its dump needs no socket)."""
    config = Config(origin="test")
    config = dataclasses.replace(config, nut=dataclasses.replace(config.nut, mode="driver"))
    side = DriverSide(ups="solar", socket=tmp_path / "nutbridge-solar")
    wiring = Wiring(config=config, portfile=None, dialect=Dialect(None), settings=SETTINGS, driver=side,
                    load=switch, driver_settings=stored)  # fmt: skip
    view = nut_view(wiring)
    assert isinstance(view, DriverSocket)
    return view


async def test_load_off_and_on_switch_the_simulated_coil(tmp_path: Path) -> None:
    async with SimulatedSource(timeout=0.5) as simulated:
        commands = load_commands(LoadSwitch(simulated))
        assert await commands["load.off"](None) == CmdStatus.HANDLED
        assert simulated.plant.load_on is False
        assert (await simulated.read()).load_power == 0  # the next poll sees the load gone
        assert await commands["load.on"](None) == CmdStatus.HANDLED
        assert simulated.plant.load_on is True
        dump = driver_socket(tmp_path, LoadSwitch(simulated)).state.dump()
    assert "ADDCMD load.off" in dump and "ADDCMD load.on" in dump


def test_a_source_without_a_load_output_lists_no_load_command(tmp_path: Path) -> None:
    switch = LoadSwitch.of(PowerwallSource("http://127.0.0.1:9", timeout=1.0))
    assert switch is None
    dump = driver_socket(tmp_path, switch).state.dump()
    assert not [line for line in dump if line.startswith("ADDCMD")]


async def test_upsrw_charge_low_is_checked_kept_and_read_again(tmp_path: Path) -> None:
    path = tmp_path / "nutbridge-solar.settings"
    stored = DriverSettings(path)
    by_hand = hand_settings(None, stored, {"battery.charge.low"})
    assert by_hand() == {}
    for wrong in ("", "abc", "100", "-5", "35%", "1e2", "35\n"):
        assert await stored.set("battery.charge.low", wrong) == SetStatus.INVALID, wrong
    assert not path.exists()
    assert await stored.set("battery.charge.low", "35") == SetStatus.HANDLED
    assert by_hand() == {"battery.charge.low": "35"}  # the monitor's next poll: LB below 35 %
    assert path.read_text() == "battery.charge.low: 35\n"
    assert DriverSettings(path).get() == {"battery.charge.low": "35"}  # a restarted driver starts with it
    view = driver_socket(tmp_path, None, stored)
    view.state.apply({"battery.charge.low": "35"})
    assert "SETFLAGS battery.charge.low RW NUMBER" in view.state.dump()  # upsrw lists it


async def test_an_override_in_ups_conf_wins_and_is_not_writable(tmp_path: Path) -> None:
    path = tmp_path / "nutbridge-solar.settings"
    path.write_text("battery.charge.low: 35\nups.delay.shutdown: 5\n")
    stored = DriverSettings(path, {"battery.charge.low": "25"})
    assert stored.get() == {"battery.charge.low": "25"}  # the override, and nothing NUT may not write
    assert stored.setters(SETTINGS) == {}
    assert await stored.set("battery.charge.low", "40") == SetStatus.INVALID
    assert path.read_text() == "battery.charge.low: 35\nups.delay.shutdown: 5\n"
    view = driver_socket(tmp_path, None, stored)
    view.state.apply({"battery.charge.low": "25"})
    assert not [line for line in view.state.dump() if line.startswith("SETFLAGS")]  # upsd: READONLY


async def test_a_settings_file_that_cannot_be_written_leaves_the_value_unset(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    stored = DriverSettings(folder / "missing-folder" / "x" / "nutbridge-solar.settings")
    (folder / "missing-folder").write_text("a file where the folder would be")
    assert await stored.set("battery.charge.low", "35") == SetStatus.FAILED
    assert stored.get() == {}
