"""Finding our UPS in ups.conf by the port file's path, and the driver restart that follows from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from nutbridge.nut import upsconf

UPS_CONF = """\
# NUT ups.conf
maxretry = 3
user = root

[grid]
    driver = usbhid-ups
    port = auto

[solar]
    driver = dummy-ups
    port = "{port}"
    mode = dummy-once

[other-solar]
    driver = dummy-ups
    port = other.dev
"""


@pytest.fixture
def confpath(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "ups.conf").write_text(UPS_CONF.format(port=tmp_path / "data" / "solar.dev"))
    monkeypatch.setenv("NUT_CONFPATH", str(folder))
    return folder


def test_the_ups_is_found_by_its_port_file(confpath: Path, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    link = tmp_path / "link.dev"
    link.symlink_to(tmp_path / "data" / "solar.dev")
    assert upsconf.find_ups(tmp_path / "data" / "solar.dev") == "solar"
    assert upsconf.find_ups(link) == "solar"  # the same file through a link
    assert upsconf.find_ups(confpath / "other.dev") == "other-solar"  # relative ports are in NUT's folder
    assert upsconf.find_ups(tmp_path / "nowhere.dev") is None


def test_restart_command_is_upsdrvctl_start_without_systemd(
    confpath: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upsconf, "find_upsdrvctl", lambda: "/sbin/upsdrvctl")
    monkeypatch.setattr(upsconf, "systemd_runs", lambda ups: False)
    port = tmp_path / "data" / "solar.dev"
    assert upsconf.restart_command(port, None) == ("/sbin/upsdrvctl", "start", "solar")
    assert upsconf.restart_command(port, ()) == ()  # turned off
    assert upsconf.restart_command(port, ("my", "cmd")) == ("my", "cmd")
    assert upsconf.restart_command(tmp_path / "unknown.dev", None) == ()
    monkeypatch.setattr(upsconf, "systemd_runs", lambda ups: True)  # nut-driver@solar restarts it
    assert upsconf.restart_command(port, None) == ()


def test_no_ups_conf_means_no_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUT_CONFPATH", str(tmp_path))
    assert upsconf.restart_command(tmp_path / "solar.dev", None) == ()
