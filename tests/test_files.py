"""Temp files of atomic writes (``replace_atomically`` and the port file's own): whatever someone who can write the
folder plants at the temp name (a FIFO, a hard link, a symlink) neither hangs the writer nor touches another file.

``nutbridge setup`` runs as root and writes into folders NUT's user can write (/var/lib/nut, /run/nut), so these
are run as root when the suite is: the victim file then belongs to ``nobody``, and a chown would show.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from nutbridge.errors import PortFileError
from nutbridge.files import replace_atomically
from nutbridge.nut.portfile import PortFile, Write

NOBODY = 65534
GUARD = 10.0  # s: a guard against a hang, not a timing assertion
NEW = b"ups.status: OB\n"  # what both writers write


def write_with_helper(path: Path) -> Callable[[], None]:
    """A root write as ``nutbridge setup`` makes one: an owner and an exact mode for the new file."""
    return lambda: replace_atomically(path, NEW, 0o600, owner=(os.geteuid(), os.getegid()))


def write_port_file(path: Path) -> Callable[[], None]:
    """The port file's own replacement, as each poll makes it."""
    pf = PortFile(path)
    pf.locate()  # removes stale temp files: the plant comes after it, as it would at any later poll

    def write() -> None:
        assert pf.update({"ups.status": "OB"}) is Write.WRITTEN

    return write


WRITERS = {"replace_atomically": write_with_helper, "port file": write_port_file}


@pytest.fixture(params=WRITERS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Callable[[], None]]:
    """The file written (an existing port file) and a function that makes one write of it."""
    path = tmp_path / "solar.dev"
    path.write_bytes(b"ups.status: OL\n")
    return path, WRITERS[request.param](path)


def temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.nutbridge.tmp")


def victim(folder: Path) -> tuple[Path, tuple[bytes, int, int, int]]:
    """Another file, owned by nobody when we are root, and what must stay as it is: bytes, owner, group, mode."""
    path = folder / "other-file"
    path.write_bytes(b"not yours\n")
    path.chmod(0o640)
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    return path, state(path)


def state(path: Path) -> tuple[bytes, int, int, int]:
    st = path.stat()
    return path.read_bytes(), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_a_fifo_at_the_temp_name_does_not_hang_the_writer(target: tuple[Path, Callable[[], None]]) -> None:
    path, write = target
    tmp = temp_name(path)
    os.mkfifo(tmp)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            write()
        except BaseException as exc:  # handed to the test, which fails with it
            errors.append(exc)

    writer = threading.Thread(target=run, daemon=True)
    writer.start()
    writer.join(GUARD)
    if writer.is_alive():  # the old open(O_WRONLY) waits for a reader: be one, so the thread ends
        os.close(os.open(tmp, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(GUARD)
        pytest.fail("the write hung on a FIFO at its temp name")
    assert errors == []
    assert stat.S_ISREG(path.lstat().st_mode) and b"ups.status: OB" in path.read_bytes()
    assert not tmp.exists()


def test_a_hard_link_at_the_temp_name_leaves_its_file_alone(target: tuple[Path, Callable[[], None]]) -> None:
    path, write = target
    other, before = victim(path.parent)
    os.link(other, temp_name(path))  # where fs.protected_hardlinks is 0, anyone may link to any file
    write()
    assert state(other) == before
    assert path.stat().st_ino != other.stat().st_ino and b"ups.status: OB" in path.read_bytes()


def test_a_symlink_at_the_temp_name_leaves_its_target_alone(target: tuple[Path, Callable[[], None]]) -> None:
    path, write = target
    other, before = victim(path.parent)
    temp_name(path).symlink_to(other)
    write()  # the old O_NOFOLLOW open failed (ELOOP) and so did the write: a denial of service
    assert state(other) == before
    assert not path.is_symlink() and b"ups.status: OB" in path.read_bytes()


def test_a_temp_name_taken_again_before_the_open_fails_the_write(
    target: tuple[Path, Callable[[], None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone plants the name again between our unlink and our open: the write fails, nothing goes through."""
    path, write = target
    other, before = victim(path.parent)
    os.link(other, temp_name(path))
    unlink = os.unlink
    planted: list[Path] = []

    def unlink_then_plant(name: Path) -> None:
        unlink(name)
        if not planted:  # once: the cleanup after the failure unlinks for real
            planted.append(name)
            os.link(other, name)

    monkeypatch.setattr(os, "unlink", unlink_then_plant)
    with pytest.raises((OSError, PortFileError), match="created anew by another writer"):
        write()
    monkeypatch.undo()
    assert planted == [temp_name(path)]
    assert state(other) == before
    assert path.read_bytes() == b"ups.status: OL\n"  # unchanged
