"""What each NUT from 2.8.0 to 2.8.5 reads from a port file (shared/reference/nut-versions.md), and how
nutbridge finds out which one it writes for."""

from __future__ import annotations

import os
from pathlib import Path
from types import MappingProxyType

import pytest

from nutbridge.errors import ConfigError
from nutbridge.nut import version
from nutbridge.nut.driver import file_values
from nutbridge.nut.portfile_text import merge, parse_values
from nutbridge.nut.version import Dialect, NutVersion, parse_version
from nutbridge.snapshot import Comms, Snapshot
from tests.conftest import need


def snapshot(status: str, alarm: str | None) -> Snapshot:
    return Snapshot(
        seq=1, time=0.0, comms=Comms.OK, variables=MappingProxyType({"ups.status": status, "ups.alarm": alarm})
    )


def dialect(text: str | None) -> Dialect:
    return Dialect(parse_version(text, "test") if text else None)


@pytest.mark.parametrize(
    ("nut", "status", "alarm_line", "instruction"),
    [
        # up to 2.8.2 the ALARM token passes through and clears; ups.alarm lines are published
        ("2.8.0", "OL CHRG ALARM", "load short circuit", None),
        ("2.8.1", "OL CHRG ALARM", "load short circuit", None),
        ("2.8.2", "OL CHRG ALARM", "load short circuit", None),
        # 2.8.3 never clears an ALARM token (issue #2928): only the ups.alarm line
        ("2.8.3", "OL CHRG", "load short circuit", None),
        # 2.8.4+ drops ups.alarm lines and reads the ALARM instruction, adding ALARM to ups.status itself
        ("2.8.4", "OL CHRG", None, "load short circuit"),
        ("2.8.5", "OL CHRG", None, "load short circuit"),
        ("2.8.10", "OL CHRG", None, "load short circuit"),
    ],
)
def test_a_fault_is_written_as_each_version_reads_it(
    nut: str, status: str, alarm_line: str | None, instruction: str | None
) -> None:
    values = file_values(snapshot("OL CHRG ALARM", "load short circuit"), dialect(nut))
    assert values["ups.status"] == status
    assert values["ups.alarm"] == alarm_line
    assert values.get("ALARM") == instruction
    assert ("ALARM" in values) == (instruction is not None)


@pytest.mark.parametrize("nut", ["2.8.0", "2.8.2", "2.8.3", "2.8.4", "2.8.5"])
def test_the_alarm_clears_when_the_fault_ends_and_status_is_always_written(nut: str) -> None:
    with_fault = merge("# hand\n", file_values(snapshot("OB DISCHRG ALARM", "overload"), dialect(nut)))
    cleared = merge(with_fault, file_values(snapshot("OB DISCHRG", None), dialect(nut)))
    values = parse_values(cleared)
    assert values["ups.status"] == "OB DISCHRG"  # 2.8.4 would leave ups.status empty without this line
    assert values.get("ups.alarm", "") == ""  # deleted (ups.alarm: "") or never written
    assert "ALARM overload" not in cleared
    if dialect(nut).alarm_instruction:
        assert "\nALARM\n" in cleared  # the bare instruction clears it on 2.8.4+


def test_unknown_version_writes_every_form() -> None:
    values = file_values(snapshot("OL ALARM", "x"), Dialect(None))
    assert (values["ups.status"], values["ups.alarm"], values["ALARM"]) == ("OL", "x", "x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2.8.1", NutVersion(2, 8, 1)), ("2.8.1-5+deb13u1", NutVersion(2, 8, 1)), ("v2.8.10", NutVersion(2, 8, 10))],
)
def test_versions_parse_and_compare_as_numbers(text: str, expected: NutVersion) -> None:
    assert parse_version(text, "x") == expected
    assert NutVersion(2, 8, 10) > NutVersion(2, 8, 4)


def test_a_bad_version_names_where_it_came_from() -> None:
    with pytest.raises(ConfigError, match=r"--nut-version: '2\.8' is not a NUT version; write it as 2\.8\.1"):
        parse_version("2.8", "--nut-version")


@pytest.mark.parametrize(
    ("banner", "expected"),
    [
        ("Network UPS Tools - Device simulation and repeater driver 0.15 (2.8.0)", "2.8.0"),
        ("Network UPS Tools - Device simulation and repeater driver 0.16 (2.8.1)", "2.8.1"),
        ("Network UPS Tools - Device simulation and repeater driver 0.19 (2.8.5-1)", "2.8.5"),
        ("Network UPS Tools - Device simulation and repeater driver 0.18 (2.8.4.1-some-git)", "2.8.4"),
        ("Network UPS Tools 2.8.5 release - Device simulation and repeater driver 0.25", "2.8.5"),
        ("dummy-ups: no version here", None),
    ],
)
def test_detect_reads_dummy_ups_from_path_first(
    banner: str, expected: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "dummy-ups"
    fake.write_text(f"#!/bin/sh\necho '{banner}'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    found = version.detect()
    assert (str(found) if found else None) == expected


def test_detect_falls_back_to_nut_driver_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drivers = tmp_path / "lib-nut"
    drivers.mkdir()
    fake = drivers / "dummy-ups"
    fake.write_text("#!/bin/sh\necho 'Network UPS Tools - Device simulation and repeater driver 0.17 (2.8.3)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(version, "DRIVER_FOLDERS", (str(tmp_path / "nowhere"), str(drivers)))
    assert version.detect() == NutVersion(2, 8, 3)
    monkeypatch.setattr(version, "DRIVER_FOLDERS", ())
    assert version.detect() is None


def test_the_installed_nut_is_detected() -> None:
    need(version.find_dummy_ups() is not None, "NUT's dummy-ups (nut-server)")
    assert version.detect() is not None
