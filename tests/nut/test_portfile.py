"""The port file on disk: atomic replacement, mtime seconds, nocomms renames, bad files and full disks, the seed."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nutbridge.errors import PortFileError
from nutbridge.nut.portfile import PortFile, Write
from nutbridge.nut.portfile_text import hand_set, merge, parse_values
from nutbridge.nut.seed import Seed
from tests.conftest import need, read_only


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


def test_hand_lines_stay_verbatim_crlf_form_feed_and_line_separators(tmp_path: Path) -> None:
    path = tmp_path / "solar.dev"
    hand = (
        "# notes from windows\r\nbattery.charge.low: 30\r\n# ls\u2028battery.charge: 1\n# page\x0cbreak\n"
        "ups.status: OB\r\n"
    )
    path.write_bytes(hand.encode())
    os.utime(path, (0, 0))
    pf = PortFile(path)
    pf.locate()
    assert pf.update({"ups.status": "OL", "battery.charge": "80"}) is Write.WRITTEN
    text = path.read_bytes().decode()
    assert text == (
        "# notes from windows\r\nbattery.charge.low: 30\r\n# ls\u2028battery.charge: 1\n# page\x0cbreak\n"
        "ups.status: OL\r\nbattery.charge: 80\n"
    )
    assert parse_values(text)["battery.charge"] == "80"  # the comment never became a live line


def test_a_symlinked_port_file_stays_a_link_and_its_target_is_replaced(tmp_path: Path) -> None:
    real = tmp_path / "persistent" / "solar.dev"
    real.parent.mkdir()
    real.write_text("# by hand\n")
    os.utime(real, (0, 0))
    link = tmp_path / "solar.dev"
    link.symlink_to(real)
    pf = PortFile(link)
    pf.locate()
    for charge in ("50", "60"):
        while pf.update({"battery.charge": charge}) is Write.DEFERRED:
            pass
        assert link.is_symlink() and link.resolve() == real
        assert parse_values(real.read_text())["battery.charge"] == charge
    assert sorted(p.name for p in tmp_path.iterdir()) == ["persistent", "solar.dev"]
    assert [p.name for p in real.parent.iterdir()] == ["solar.dev"]  # the temp file lived beside the target


def test_an_mtime_ahead_of_the_clock_never_stops_the_writes(port_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    future = int(time.time()) + 3 * 86400  # a file written before the clock stepped back three days
    os.utime(port_file, (future, future))
    pf = PortFile(port_file)
    pf.locate()
    assert pf.update({"ups.status": "OB LB"}) is Write.WRITTEN
    assert int(port_file.stat().st_mtime) != future  # dummy-once sees a new second, so it reads the file
    assert int(port_file.stat().st_mtime) <= time.time() + 1
    while pf.update({"ups.status": "OL"}) is Write.DEFERRED:
        pass
    assert parse_values(port_file.read_text())["ups.status"] == "OL"
    warnings = [r for r in caplog.records if "ahead of the clock" in r.getMessage()]
    assert len(warnings) == 1


def test_stale_temp_files_of_our_naming_are_removed_at_start(port_file: Path) -> None:
    stale = [port_file.parent / f".solar.dev.{tag}.tmp" for tag in ("abc123", "x_9")]
    for tmp in stale:
        tmp.write_text("half a write")
    other = port_file.parent / ".other.dev.abc.tmp"
    other.write_text("not ours")
    PortFile(port_file).locate()
    assert not any(tmp.exists() for tmp in stale)
    assert other.exists()


def test_generated_settings_follow_the_device_and_hand_set_ones_stay(tmp_path: Path) -> None:
    path = tmp_path / "solar.dev"
    path.write_text("battery.type: my own words\n")
    os.utime(path, (0, 0))
    pf = PortFile(path)
    pf.locate()
    settings = ("battery.capacity", "ups.model", "battery.type")

    def write(values: dict[str, str | None]) -> None:
        keep = {n: v for n, v in values.items() if n not in hand_set(pf.read(), settings)}
        while pf.update(keep, marked=settings) is Write.DEFERRED:
            pass

    write({"battery.capacity": None, "ups.model": "Tracer", "battery.type": "PbAc sealed"})  # identification failed
    first = path.read_text()
    assert "ups.model: Tracer # nutbridge" in first and "battery.capacity" not in first
    assert hand_set(first, settings) == {"battery.type": "my own words"}
    write({"battery.capacity": "200", "ups.model": "Tracer2210AN", "battery.type": "PbAc sealed"})  # read later
    values = parse_values(path.read_text())
    assert (values["battery.capacity"], values["ups.model"]) == ("200", "Tracer2210AN")
    assert values["battery.type"] == "my own words"


def run_as(user: str, groups: str, code: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` as ``user`` with supplementary ``groups`` (setpriv, from util-linux).

    The checkout and its venv may sit in folders only root can enter (a fresh clone in a 0700 temp folder), so
    the package is copied into ``folder`` and run by the system's Python: the port file needs the stdlib only.
    """
    shutil.copytree(Path(__file__).parents[2] / "nutbridge", folder / "lib" / "nutbridge")
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    prelude = f"import sys; sys.path.insert(0, {str(folder / 'lib')!r})\n"
    return subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={user}", f"--groups={groups}", python, "-I", "-c", prelude + code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=folder,
    )


def test_run_as_nut_the_group_is_kept_and_a_lost_owner_is_warned(request: pytest.FixtureRequest) -> None:
    need(os.geteuid() == 0 and shutil.which("setpriv") is not None, "root and setpriv, to act as the nut user")
    try:
        nut, dialout = pwd.getpwnam("nut"), grp.getgrnam("dialout")
    except KeyError:
        need(False, "the nut user (nut-server) and the dialout group")
        raise
    # pytest's own folders are 0700: nut could not reach one below them
    folder = Path(tempfile.mkdtemp(prefix="nutbridge-as-nut-", dir="/var/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(folder))
    os.chown(folder, nut.pw_uid, dialout.gr_gid)
    path = folder / "solar.dev"
    path.write_text("ups.status: OL\n")
    os.chown(path, 0, dialout.gr_gid)
    path.chmod(0o664)
    os.utime(path, (0, 0))
    code = (
        "import logging, sys; from pathlib import Path; from nutbridge.nut.portfile import PortFile\n"
        "logging.basicConfig(stream=sys.stderr, level=logging.INFO)\n"
        f"pf = PortFile(Path({str(path)!r})); pf.locate()\n"
        "print(pf.update({'ups.status': 'OB'}).value); print(pf.update({'ups.status': 'OB LB'}).value)\n"
    )
    done = run_as("nut", "dialout", code, folder)
    assert done.returncode == 0, done.stderr
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (nut.pw_uid, dialout.gr_gid, 0o664)
    assert done.stderr.count("cannot keep owner 0") == 1, done.stderr  # once, not per write
    assert "group" not in done.stderr


# ------------------------------------------------------------------ the seed (nut.seed_file: the port file on tmpfs)

SEEDED = "# my UPS notes\nbattery.charge.low: 25\n\nTIMER 5\n"
GENERATED = {"ups.status": "OL", "battery.charge": "80", "battery.capacity": "100", "ALARM": None}


def poll(pf: PortFile, values: dict[str, str | None]) -> Write:
    """One poll's write, as the sink makes it: settings marked, a hidden file renamed back."""
    while (result := pf.update(values, marked=("battery.capacity",))) is Write.DEFERRED:
        pass
    pf.restore()
    return result


def test_a_missing_port_file_is_created_from_its_seed_under_the_nocomms_name(tmp_path: Path) -> None:
    seed = tmp_path / "disk" / "solar.dev"
    seed.parent.mkdir()
    seed.write_text(SEEDED)
    seed.chmod(0o640)
    port_file = tmp_path / "run" / "solar.dev"
    port_file.parent.mkdir()
    pf = PortFile(port_file, seed=Seed(seed))
    pf.locate()
    assert pf.hidden and not port_file.exists()  # no values yet: NUT sees no driver until the first good poll
    assert pf.hidden_path.read_text() == SEEDED and pf.hidden_path.stat().st_mode & 0o777 == 0o640
    assert poll(pf, GENERATED) is Write.WRITTEN
    text = port_file.read_text()
    assert text.startswith(SEEDED) and parse_values(text)["ups.status"] == "OL"
    assert seed.read_text() == SEEDED
    assert sorted(p.name for p in port_file.parent.iterdir()) == ["solar.dev"]  # no temp file, no -nocomms


def test_without_a_seed_a_missing_port_file_is_still_refused(tmp_path: Path) -> None:
    pf = PortFile(tmp_path / "run" / "solar.dev", seed=Seed(tmp_path / "disk" / "solar.dev"))
    with pytest.raises(PortFileError, match=r"nor its seed .*solar\.dev \(nut\.seed_file\).* create the seed first"):
        pf.locate()


def reboot(port_file: Path, seed: Path) -> PortFile:
    """A reboot empties the tmpfs; the daemon starts again."""
    for name in (port_file, port_file.with_name(port_file.name + "-nocomms")):
        name.unlink(missing_ok=True)
    pf = PortFile(port_file, seed=Seed(seed))
    pf.locate()
    return pf


def test_hand_edits_reach_the_seed_and_survive_a_reboot(tmp_path: Path) -> None:
    seed, port_file = tmp_path / "seed.dev", tmp_path / "run" / "solar.dev"
    port_file.parent.mkdir()
    seed.write_text(SEEDED)
    pf = reboot(port_file, seed)
    poll(pf, GENERATED)
    edited = port_file.read_text().replace("battery.charge.low: 25", "battery.charge.low: 33") + "# a new note\n"
    port_file.write_text(edited)  # a person edits the port file on tmpfs
    poll(pf, {**GENERATED, "battery.charge": "81"})
    hand = "# my UPS notes\nbattery.charge.low: 33\n\nTIMER 5\n# a new note\n"
    assert seed.read_text() == hand  # the hand-written lines only: no values, no marked settings
    pf = reboot(port_file, seed)
    poll(pf, GENERATED)
    assert port_file.read_text().startswith(hand)
    assert parse_values(port_file.read_text())["battery.charge.low"] == "33"


def test_the_seed_is_not_rewritten_at_every_poll(tmp_path: Path) -> None:
    seed, port_file = tmp_path / "seed.dev", tmp_path / "run" / "solar.dev"
    port_file.parent.mkdir()
    seed.write_text(SEEDED)
    before = seed.stat()
    pf = reboot(port_file, seed)
    for charge in range(40, 45):  # each write waits for a new second (dummy-once): the daemon's test polls more
        assert poll(pf, {**GENERATED, "battery.charge": str(charge)}) is Write.WRITTEN
    pf = PortFile(port_file, seed=Seed(seed))  # a restart without a reboot reads the file it finds
    pf.locate()
    poll(pf, {**GENERATED, "battery.charge": "60"})
    after = seed.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "seed.dev"]  # no temp file of the seed


def test_an_old_port_file_as_seed_is_stripped_to_its_hand_lines_once(tmp_path: Path) -> None:
    seed, port_file = tmp_path / "old.dev", tmp_path / "run" / "solar.dev"  # moving to tmpfs: the old file seeds
    port_file.parent.mkdir()
    seed.write_text(merge(SEEDED, GENERATED, marked=("battery.capacity",)))
    pf = reboot(port_file, seed)
    poll(pf, GENERATED)
    assert seed.read_text() == SEEDED  # stale values are not kept for the next boot
    inode = seed.stat().st_ino
    poll(pf, {**GENERATED, "ups.status": "OB"})
    assert seed.stat().st_ino == inode


def test_a_seed_that_cannot_be_written_is_warned_about_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    disk, port_file = tmp_path / "disk", tmp_path / "run" / "solar.dev"
    disk.mkdir()
    port_file.parent.mkdir()
    (disk / "solar.dev").write_text(SEEDED)
    pf = reboot(port_file, disk / "solar.dev")
    poll(pf, GENERATED)
    port_file.write_text(port_file.read_text() + "# edited\n")
    with read_only(disk):
        for charge in ("70", "71", "72"):
            assert poll(pf, {**GENERATED, "battery.charge": charge}) is Write.WRITTEN  # NUT still gets its values
    assert [r.getMessage().split(":")[0] for r in caplog.records if r.levelname == "WARNING"] == [
        f"cannot update the port file's seed {disk / 'solar.dev'}"
    ]
    poll(pf, {**GENERATED, "battery.charge": "73"})  # writable again: the edit gets there
    assert (disk / "solar.dev").read_text() == SEEDED + "# edited\n"
