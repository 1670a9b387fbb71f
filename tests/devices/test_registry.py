"""The registry: a family defined only in the tests (tests/helpers/family.py), registered at run time, runs end to
end through the daemon to the port file, as the recipe "add a device family" promises; and the kinds listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from nutbridge import daemon
from nutbridge.config import load, with_overrides
from nutbridge.devices import registry
from nutbridge.errors import ConfigError
from nutbridge.nut.portfile import PortFile
from nutbridge.nut.portfile_text import parse_values
from tests.helpers.family import FAMILY, KIND, registered, station


async def test_a_family_of_the_tests_runs_end_to_end_to_the_port_file(tmp_path: Path) -> None:
    with registered():
        async with station(lambda: b"charge=73 wind=4.5\n") as port:
            config_file = tmp_path / "nutbridge.toml"
            config_file.write_text(
                f'[source]\nkind = "{KIND}"\nport = {port}\n[nut]\nport_file = "ups.dev"\nversion = "2.8.0"\n'
            )
            (tmp_path / "ups.dev").write_text("# written by hand\nbattery.charge.low: 80\n")
            config = load(config_file)
            assert config.nut.port_file is not None
            status = await daemon.run(config, PortFile(config.nut.port_file), single=True, verbose=False, demo=False)
    assert status == daemon.EX_OK
    values = parse_values((tmp_path / "ups.dev").read_text())
    assert values["experimental.wind.speed"] == "4.5"  # the family's own field, through its own table
    assert values["battery.charge"] == "73"
    assert values["ups.status"] == "OL LB"  # the shared power rules, with the hand-set battery.charge.low
    assert values["device.description"] == "Test Windy wind station"


def test_an_unregistered_kind_is_a_config_error_naming_the_kinds(tmp_path: Path) -> None:
    config_file = tmp_path / "nutbridge.toml"
    config_file.write_text(f'[source]\nkind = "{KIND}"\n')
    with pytest.raises(
        ConfigError, match=r"source.kind = 'windstation' is not allowed; use tracer, simulator, envoy, powerwall$"
    ):
        load(config_file)
    with registered():
        assert registry.family(KIND) is FAMILY
        with pytest.raises(ValueError, match="registered already"):
            registry.register(FAMILY)
    assert KIND not in registry.kinds()


def test_the_family_says_what_its_section_lacks_and_the_daemon_refuses_to_start(tmp_path: Path) -> None:
    config_file = tmp_path / "nutbridge.toml"
    config_file.write_text(f'[source]\nkind = "{KIND}"\n[nut]\nport_file = "ups.dev"\n')
    with registered():
        with pytest.raises(ConfigError, match=r"nutbridge\.toml: the wind station needs source\.port$"):
            with_overrides(load(config_file))
        config_file.write_text(f'[source]\nkind = "{KIND}"\nport = 9\n[nut]\nport_file = "ups.dev"\n')
        assert with_overrides(load(config_file)).source == FAMILY.config(port=9)


def test_test_mode_shows_the_simulator_for_a_family_without_fixtures_of_its_own() -> None:
    tracer = registry.family("tracer")
    section = tracer.config()
    assert registry.chosen(section, test=False) == (tracer, section)
    family, _ = registry.chosen(section, test=True)
    assert family.kind == "simulator"
    envoy = registry.family("envoy")
    assert registry.chosen(envoy.config(), test=True)[0] is envoy  # its own fixture gateway


def test_every_kind_opens_its_own_family_and_section() -> None:
    for kind in registry.kinds():
        family = registry.family(kind)
        assert family.kind == family.config.kind == kind
