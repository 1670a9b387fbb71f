"""The port file: merge rules, atomic replacement, mtime seconds, nocomms renames, bad files and full disks."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nutbridge.errors import PortFileError
from nutbridge.nut.portfile import PortFile, Write, format_value, merge, parse_values
from tests.conftest import need

HAND = """\
# my UPS notes
battery.charge.low: 25

nut.mfr: kept as is
ups.status: OB
\x01\x02 junk that is no variable
TIMER 5
some.unknown: value   with  spaces
"""


def test_merge_updates_in_place_and_keeps_everything_else() -> None:
    out = merge(HAND, {"ups.status": "OL CHRG", "battery.charge": "80"})
    lines = out.splitlines()
    assert lines[:4] == ["# my UPS notes", "battery.charge.low: 25", "", "nut.mfr: kept as is"]
    assert lines[4] == "ups.status: OL CHRG"  # updated where it stood
    assert lines[5:8] == ["\x01\x02 junk that is no variable", "TIMER 5", "some.unknown: value   with  spaces"]
    assert lines[8] == "battery.charge: 80"  # new variables go at the end


def test_delete_is_empty_quotes_never_a_bare_colon() -> None:
    out = merge("battery.temperature: 25.0\n", {"battery.temperature": None, "ups.alarm": None})
    assert out == 'battery.temperature: ""\n'  # deleted where it was; not added where it wasn't
    assert format_value("") == '""'
    assert not any(line.rstrip().endswith(":") for line in merge(HAND, {"x.y": ""}).splitlines())


def test_values_are_cleaned_for_the_dummy_ups_parser() -> None:
    assert format_value('a # b "c"\n d') == "a b c d"
    assert len(format_value("x" * 500)) == 127


def test_parse_values_reads_what_dummy_ups_reads() -> None:
    values = parse_values(HAND + 'ups.alarm: ""\n')
    assert values["battery.charge.low"] == "25"
    assert values["ups.alarm"] == ""
    assert "TIMER 5" not in values


def test_update_writes_only_on_change(port_file: Path) -> None:
    pf = PortFile(port_file)
    pf.locate()
    os.utime(port_file, (0, 0))  # pretend the file is old, so the first write needs no wait
    pf.locate()
    assert pf.update({"ups.status": "OL"}) is Write.WRITTEN
    inode = port_file.stat().st_ino
    assert pf.update({"ups.status": "OL"}) is Write.UNCHANGED
    assert port_file.stat().st_ino == inode


def test_each_write_gets_a_new_whole_second(port_file: Path) -> None:
    pf = PortFile(port_file)
    pf.locate()
    seconds = []
    for i in range(3):
        while (result := pf.update({"battery.charge": str(i)})) is Write.DEFERRED:
            pass
        assert result is Write.WRITTEN
        seconds.append(int(port_file.stat().st_mtime))
    assert len(set(seconds)) == 3, f"two writes shared an mtime second: {seconds}"


def test_replacement_is_atomic_for_a_reader(port_file: Path) -> None:
    pf = PortFile(port_file)
    pf.locate()
    seen: set[str] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(port_file.read_text())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(40):
            pf._replace(merge(port_file.read_text(), {"battery.charge": str(i), "pad": "x" * 100}).encode(), i + 1)
    finally:
        stop.set()
        thread.join()
    assert all(text.startswith("# written by hand\n") and text.endswith("\n") for text in seen)
    assert all("battery.charge: " in text and "pad: " in text for text in seen if "pad" in text)


def test_mode_is_kept(port_file: Path) -> None:
    port_file.chmod(0o640)
    pf = PortFile(port_file)
    pf.locate()
    pf._replace(b"ups.status: OL\n", 12345)
    assert port_file.stat().st_mode & 0o777 == 0o640
    assert int(port_file.stat().st_mtime) == 12345


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` unwritable: chmod for a user, a read-only bind mount for root (who ignores modes)."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)
        return
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_unwritable_folder_keeps_the_old_file(port_file: Path) -> None:
    pf = PortFile(port_file)
    os.utime(port_file, (0, 0))
    pf.locate()
    with read_only(port_file.parent), pytest.raises(PortFileError, match="folder not writable; the file is unchanged"):
        pf.update({"ups.status": "OL"})
    assert port_file.read_text() == "# written by hand\nbattery.charge.low: 25\n"
    assert [p.name for p in port_file.parent.iterdir()] == ["solar.dev"]  # no temp file left behind


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 KiB tmpfs: a disk that fills up."""
    need(os.geteuid() == 0, "root, to mount a small tmpfs")
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(folder)], check=False)
    need(mounted.returncode == 0, "mount -t tmpfs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_full_disk_keeps_the_old_file(tiny_disk: Path) -> None:
    port_file = tiny_disk / "solar.dev"
    port_file.write_text("ups.status: OL\n")
    os.utime(port_file, (0, 0))
    (tiny_disk / "filler").write_bytes(b"x" * 12 * 1024)
    pf = PortFile(port_file)
    pf.locate()
    with pytest.raises(PortFileError, match="disk full; the file is unchanged"):
        pf.update({"ups.status": "OB", "pad": "y" * 120, **{f"v.{i}": "z" * 100 for i in range(80)}})
    assert port_file.read_text() == "ups.status: OL\n"
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler", "solar.dev"]


def test_nocomms_rename_and_back(port_file: Path) -> None:
    pf = PortFile(port_file)
    pf.locate()
    assert pf.hide() and not pf.hide()
    assert not port_file.exists() and pf.hidden_path.exists()
    again = PortFile(port_file)
    again.locate()  # either name may exist at start
    assert again.hidden
    assert again.restore() and not again.restore()
    assert port_file.read_text() == "# written by hand\nbattery.charge.low: 25\n"


def test_neither_name_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PortFileError, match=r"solar\.dev does not exist \(nor solar\.dev-nocomms\); create it"):
        PortFile(tmp_path / "solar.dev").locate()


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "solar.dev"
    big.write_bytes(b"#" * (300 * 1024))
    pf = PortFile(big)
    pf.locate()
    with pytest.raises(PortFileError, match=r"is over 256 KiB"):
        pf.update({"ups.status": "OL"})


def test_non_utf8_junk_survives_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "solar.dev"
    path.write_bytes(b"\xff\xfe odd bytes\nups.status: OB\n")
    os.utime(path, (0, 0))
    pf = PortFile(path)
    pf.locate()
    pf.update({"ups.status": "OL"})
    assert path.read_bytes() == b"\xff\xfe odd bytes\nups.status: OL\n"
