"""The port file on a real tmpfs, seeded from a file on the disk: the real daemon, a simulated reboot, and a real
dummy-ups reading the seeded file. Root only (mount -t tmpfs); the NUT part needs Debian's NUT as well.

A reboot is simulated by unmounting the tmpfs and mounting a fresh one: the port file is gone, the seed stays.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nutbridge.nut.portfile_text import parse_values
from nutbridge.system import nut_user
from tests.conftest import need
from tests.helpers.datalog import read_polls
from tests.nut_stack import Nutbridge, NutStack, wait_for, why_not_runnable

HAND = "# my UPS notes: kept across reboots\nbattery.charge.low: 25\n"
TIMEOUT = 30.0


class Tmpfs:
    """A tmpfs mounted at ``point``; ``reboot`` replaces it with an empty one."""

    def __init__(self, point: Path) -> None:
        self.point = point

    def mount(self) -> None:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(self.point)], check=True)

    def umount(self) -> None:
        subprocess.run(["umount", str(self.point)], check=True)

    def reboot(self) -> None:
        self.umount()
        self.mount()


@pytest.fixture
def run_nut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tmpfs]:
    """An empty tmpfs, as /run/nut after a boot (a short path: dummy-ups' socket path must stay short)."""
    need(os.geteuid() == 0, "root, to mount a tmpfs")
    point = tmp_path_factory.mktemp("seed") / "data"
    point.mkdir()
    fs = Tmpfs(point)
    fs.mount()
    try:
        yield fs
    finally:
        fs.umount()


def seeded_config(folder: Path, port_file: Path, poll_interval: float = 0.2) -> tuple[Path, Path]:
    """A config for the built-in simulator with the port file on tmpfs and its seed on the disk: (config, seed)."""
    seed = folder / "disk" / "solar.dev"
    seed.parent.mkdir()
    seed.write_text(HAND)
    config = folder / "nutbridge.toml"
    config.write_text(
        f'[source]\nkind = "simulator"\nstart = "12:00"\n[monitor]\npoll_interval = {poll_interval}\n'
        f'[nut]\nport_file = "{port_file}"\nseed_file = "{seed}"\nversion = "2.8.0"\ndriver_restart_command = ""\n'
    )
    return config, seed


def stat_of(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


def edit(port_file: Path, old: str, new: str, seed: Path) -> str:
    """A person's edit of the port file, made again if a write of the daemon raced it away; the seed's text."""
    text = port_file.read_text()
    if new not in text:
        tmp = port_file.with_name("editor-swap")
        tmp.write_text(text.replace(old, new))
        tmp.replace(port_file)
    return seed.read_text()


def one_poll(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``nutbridge -c CONFIG -s``, as nutbridge@.service's ExecStartPre refreshes the file before the driver."""
    return subprocess.run([sys.executable, "-m", "nutbridge", "-c", str(config), "-s"], capture_output=True,
                          text=True, timeout=60, check=False, env=env)  # fmt: skip


def test_the_daemon_on_tmpfs_writes_the_seed_only_when_a_person_edits(run_nut: Tmpfs) -> None:
    port_file = run_nut.point / "solar.dev"
    config, seed = seeded_config(run_nut.point.parent, port_file)
    before = stat_of(seed)
    proc = subprocess.Popen([sys.executable, "-m", "nutbridge", "-c", str(config), "-v"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        read_polls(proc, 20)
        assert stat_of(seed) == before  # 20 polls wrote the port file, never the seed
        text = port_file.read_text()
        assert text.startswith(HAND) and "ups.status: OL" in text
        change = ("battery.charge.low: 25\n", "battery.charge.low: 33\n# added\n")
        wait_for(lambda: edit(port_file, *change, seed), lambda t: "# added" in t, timeout=TIMEOUT,
                 what="the edit in the seed")  # fmt: skip
        read_polls(proc, 1)
        edited = stat_of(seed)
        read_polls(proc, 20)
        assert stat_of(seed) == edited  # written once for the edit, then left alone again
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert seed.read_text() == "# my UPS notes: kept across reboots\nbattery.charge.low: 33\n# added\n"
    run_nut.reboot()
    assert not port_file.exists()
    done = one_poll(config)
    assert done.returncode == 0, done.stderr
    assert f"created from its seed {seed}" in done.stderr
    text = port_file.read_text()
    assert text.startswith(seed.read_text()) and parse_values(text)["battery.charge.low"] == "33"
    assert sorted(p.name for p in run_nut.point.iterdir()) == ["solar.dev"]  # no -nocomms, no temp file
    assert sorted(p.name for p in seed.parent.iterdir()) == ["solar.dev"]


def test_the_port_file_made_from_its_seed_by_root_has_the_seeds_owner(run_nut: Tmpfs) -> None:
    """`sudo nutbridge solar -s` after a reboot must leave a port file that the unit's user (nut) can write."""
    user = nut_user()
    need(user is not None, "NUT's user nut (apt-get install nut-server)")
    assert user is not None
    port_file = run_nut.point / "solar.dev"
    config, seed = seeded_config(run_nut.point.parent, port_file)
    os.chown(seed, user.pw_uid, user.pw_gid)
    seed.chmod(0o640)
    done = one_poll(config)
    assert done.returncode == 0, done.stderr
    st = port_file.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (user.pw_uid, user.pw_gid, 0o640)


def test_without_its_seed_the_daemon_refuses_to_start_after_a_reboot(run_nut: Tmpfs) -> None:
    config, seed = seeded_config(run_nut.point.parent, run_nut.point / "solar.dev")
    seed.unlink()  # the wrong machine, or a seed never made
    done = one_poll(config)
    assert done.returncode == 78 and "create the seed first" in done.stderr, done.stderr
    assert list(run_nut.point.iterdir()) == []


@pytest.mark.nut
def test_dummy_ups_reads_the_seeded_tmpfs_port_file_before_and_after_a_reboot(run_nut: Tmpfs) -> None:
    reason = why_not_runnable()
    need(reason is None, reason or "")
    folder = run_nut.point.parent  # NutStack's port file is data/solar.dev: on the tmpfs
    config, seed = seeded_config(folder, run_nut.point / "solar.dev", poll_interval=1)
    nut = NutStack(folder)
    env = nut.env
    try:
        done = one_poll(config, env)  # the boot: the port file from the seed, then the first poll
        assert done.returncode == 0, done.stderr
        nut.start()
        wait_for(lambda: nut.upsc("battery.charge.low"), lambda v: v == "25", timeout=TIMEOUT,
                 what="dummy-ups to read the hand-set value from the seeded file", details=nut.describe)  # fmt: skip
        assert "OL" in nut.status_words(), nut.describe()
        bridge = Nutbridge(folder, ["-c", str(config)], env=env)
        bridge.start()
        try:
            change = ("battery.charge.low: 25", "battery.charge.low: 40")  # by hand, on the tmpfs
            wait_for(lambda: edit(nut.port_file, *change, seed), lambda t: change[1] in t, timeout=TIMEOUT,
                     what="the edit in the seed", details=bridge.describe)  # fmt: skip
            wait_for(lambda: nut.upsc("battery.charge.low"), lambda v: v == "40", timeout=TIMEOUT,
                     what="dummy-ups to read the edit", details=nut.describe)  # fmt: skip
        finally:
            assert bridge.stop() == 0, bridge.describe()
    finally:
        nut.stop()
    run_nut.reboot()
    nut = NutStack(folder)
    try:
        done = one_poll(config, env)
        assert done.returncode == 0, done.stderr
        nut.start()
        wait_for(lambda: nut.upsc("battery.charge.low"), lambda v: v == "40", timeout=TIMEOUT,
                 what="the edit to survive the reboot", details=nut.describe)  # fmt: skip
        assert nut.upsc("input.voltage") != "", nut.describe()
    finally:
        nut.stop()
