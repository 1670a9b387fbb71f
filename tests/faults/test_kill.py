"""kill -9 at random points of each kind of write, 100 times each: the port file (its atomic replacement and the
nocomms renames), the device list (DeviceList.upsert) and the token cache (TokenCache's save).

To stay fast, a child is forked from this already-imported process; it writes in a loop and is killed (SIGKILL)
after a random 0-20 ms. After each kill: every file is whole and parses (the port file has its hand-written
lines and one full generation of variables, under exactly one of its two names; the JSON and the token parse),
and temp files do not pile up (at most the one of fixed name, which the next write replaces; the port file's
is removed at start). Then what starts on that folder goes on where it was: the real daemon keeps the port
file's hand lines and serves the device list it finds; the token cache reads the token without the network.
The data log's cases belong to the data log's tests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import select
import signal
import stat
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from nutbridge.devices.enphase.token import TokenCache, expiry
from nutbridge.nut.portfile import PortFile
from nutbridge.nut.portfile_text import merge, parse_values
from nutbridge.peers.devices import DeviceList
from nutbridge.peers.entry import validate
from tests.conftest import TEST_POLICY, TEST_RANGES
from tests.faults.outage import HAND
from tests.helpers import free_port
from tests.helpers.envoy_token import make_jwt

if TYPE_CHECKING:
    from _typeshed import StrOrBytesPath

RUNS = 100
MAX_DELAY = 0.020  # s: the kill comes 0-20 ms after the fork
NAMES = ("ups.status", "battery.charge", "battery.voltage", "battery.current", "battery.runtime", "input.voltage",
         "input.current", "input.realpower", "output.voltage", "output.current", "output.realpower", "ups.load",
         "ups.temperature", "battery.temperature")  # fmt: skip
NOW = 1_800_000_000.0
MACS = [f"02:00:00:00:00:{n:02x}" for n in range(8)]
KEY = "the network key of the kill tests"
GUARD = 60.0  # s: a guard against a hang, not a timing assertion
STOP_EVERY = 4  # every fourth kill waits for the writer to be inside a write


def kill_at_random(write_forever: Callable[[], None], check: Callable[[], bool], runs: int = RUNS) -> int:
    """Fork a child running ``write_forever``, SIGKILL it, then ``check`` (True when a temp file is there);
    ``runs`` times. Returns how many kills landed inside a write, by the temp files left.

    Most kills come 0-20 ms after the fork, anywhere in the loop. Every ``STOP_EVERY``-th comes once the
    child is inside a write (its temp file written and fsynced, the rename over the file next), so at least
    ``stopped(runs)`` kills land mid-write by construction, however the machine schedules the others."""
    inside = 0
    for run in range(runs):
        stop = run % STOP_EVERY == 0
        ready, signal_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never back into pytest
            try:
                os.close(ready)
                if stop:
                    stop_before_the_rename(signal_fd)
                write_forever()
            except BaseException:
                traceback.print_exc()
                os._exit(2)
            os._exit(1)
        os.close(signal_fd)
        try:
            if stop:
                readable, _, _ = select.select([ready], [], [], GUARD)
                assert readable and os.read(ready, 1) == b"!", "the writer never reached a rename"
            else:
                time.sleep(random.uniform(0, MAX_DELAY))
        finally:
            os.close(ready)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"the writer ended by itself: {status}"
        landed = check()
        assert landed or not stop, "killed before its rename, the write left no temp file"
        inside += landed
    return inside


def stopped(runs: int) -> int:
    """How many of ``runs`` kills ``kill_at_random`` makes inside a write."""
    return -(-runs // STOP_EVERY)


def stop_before_the_rename(signal_fd: int) -> None:
    """In the child: the first rename of a temp file over its target tells the parent (one byte on
    ``signal_fd``) and waits there to be killed."""
    real = os.replace

    def replace(
        src: StrOrBytesPath, dst: StrOrBytesPath, *, src_dir_fd: int | None = None, dst_dir_fd: int | None = None
    ) -> None:
        if os.fsdecode(src).endswith(".nutbridge.tmp"):
            os.write(signal_fd, b"!")
            time.sleep(GUARD)  # the SIGKILL comes first
        real(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    os.replace = replace


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --- the port file ---------------------------------------------------------------------------------------


def generation(i: int) -> dict[str, str | None]:
    return dict.fromkeys(NAMES, str(i))


def port_file_writes(path: Path) -> Callable[[], None]:
    """What the port-file sink does, as fast as it can: replace the file with a new generation of every
    variable, and every fifth time rename it to -nocomms or back. It starts as the daemon does (locate)."""

    def forever() -> None:
        portfile = PortFile(path)
        portfile.locate()  # also removes the temp file a kill left
        for i in itertools.count(1):
            if i % 5 == 0 and portfile.hidden:
                portfile.restore()
            elif i % 5 == 0:
                portfile.hide()
            else:  # the write itself, without the mtime rule (which only spaces writes a second apart)
                portfile._replace(merge(portfile.read(), generation(i)).encode(), i)

    return forever


def port_file_whole(folder: Path) -> bool:
    """One of the two names, whole: the hand lines first, one generation of every variable, a last newline."""
    present = names(folder) & {"solar.dev", "solar.dev-nocomms"}
    assert len(present) == 1, names(folder)
    text = (folder / present.pop()).read_text()
    values = parse_values(text)
    assert text.startswith(HAND) and text.endswith("\n"), text
    assert {values.get(n) for n in NAMES} == {values["ups.status"]}, text  # every one, of the same write
    temps = {n for n in names(folder) if n.startswith(".solar.dev")}
    assert temps <= {".solar.dev.nutbridge.tmp", ".solar.dev-nocomms.nutbridge.tmp"} and len(temps) <= 1, temps
    return bool(temps)


def a_port_file(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "solar.dev"
    path.write_text(merge(HAND, generation(0)))
    return path


def test_kill_9_during_port_file_writes_and_renames_leaves_it_whole(tmp_path: Path) -> None:
    path = a_port_file(tmp_path / "state")
    assert kill_at_random(port_file_writes(path), lambda: port_file_whole(path.parent)) >= stopped(RUNS)
    PortFile(path).locate()  # a new start clears what the last kill left
    assert names(path.parent) & {".solar.dev.nutbridge.tmp", ".solar.dev-nocomms.nutbridge.tmp"} == set()


# --- the device list -------------------------------------------------------------------------------------


def device(n: int, i: int) -> dict[str, str]:
    return {"mac": MACS[n], "ip": f"192.0.2.{n + 1}", "stamp": repr(NOW + i), "name": f"Node {n}", "tz": "UTC"}


def device_list_writes(path: Path) -> Callable[[], None]:
    """Posts from the eight nodes, one after another, as fast as the list takes them."""

    def forever() -> None:
        devices = DeviceList(path, clock=lambda: NOW + 10**6, policy=TEST_POLICY)
        for i in itertools.count(1):
            devices.upsert(validate(device(i % len(MACS), i)))

    return forever


def device_list_whole(path: Path) -> bool:
    data = json.loads(path.read_bytes())
    assert isinstance(data, list) and len(data) == len(MACS)
    stored = [validate({**entry, "stamp": entry["time stamp"]}) for entry in data]
    assert [d.mac for d in stored] == MACS  # each in its place, as v1 keeps them
    temps = {n for n in names(path.parent) if n.startswith(f".{path.name}")}
    assert temps <= {f".{path.name}.nutbridge.tmp"}, temps
    return bool(temps)


def a_device_list(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "deviceList.json"
    devices = DeviceList(path, clock=lambda: NOW, policy=TEST_POLICY)
    for n in range(len(MACS)):
        devices.upsert(validate(device(n, 0)))
    return path


def test_kill_9_during_device_list_posts_leaves_it_whole(tmp_path: Path) -> None:
    path = a_device_list(tmp_path / "state")
    assert kill_at_random(device_list_writes(path), lambda: device_list_whole(path)) >= stopped(RUNS)


# --- the token cache -------------------------------------------------------------------------------------


def token_cache(path: Path) -> TokenCache:
    """A cache whose cloud is a closed port: anything it reads, it reads from the file."""
    closed = f"http://127.0.0.1:{free_port()}"
    return TokenCache(path, serial="1", username="u", password="p", login_url=f"{closed}/login",
                      token_url=f"{closed}/tokens", max_wait=0.1)  # fmt: skip


def test_kill_9_during_token_saves_leaves_it_whole_and_the_next_start_reads_it(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    path = folder / "envoy.token"
    tokens = [make_jwt(NOW + 86400 * (30 + n)) for n in range(4)]
    path.write_text(tokens[0])
    path.chmod(0o600)
    cache = token_cache(path)

    def forever() -> None:
        for i in itertools.count(1):
            cache._save(tokens[i % len(tokens)])  # what a renewal ends with

    def whole() -> bool:
        text = path.read_text()
        assert text in tokens and expiry(text) is not None
        for name in names(folder):
            assert name in ("envoy.token", ".envoy.token.nutbridge.tmp"), name
            assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name  # a temp file holds a token too
        return len(names(folder)) > 1

    assert kill_at_random(forever, whole) >= stopped(RUNS)
    saved = path.read_text()

    async def start() -> str:
        fresh = token_cache(path)
        try:
            return await fresh.get()
        finally:
            await fresh.aclose()

    assert asyncio.run(start()) == saved  # from the file: the cloud cannot be reached


# --- the daemon on such a folder -------------------------------------------------------------------------


def test_the_daemon_started_on_a_folder_of_killed_writes_goes_on_where_it_was(tmp_path: Path) -> None:
    """Fewer kills than above (those check the files); then the real daemon, with its API and device list."""
    folder = tmp_path / "state"
    port_file, device_list = a_port_file(folder), a_device_list(folder)
    runs = RUNS // 5
    assert kill_at_random(port_file_writes(port_file), lambda: port_file_whole(folder), runs=runs) >= stopped(runs)
    assert kill_at_random(device_list_writes(device_list), lambda: device_list_whole(device_list), runs=runs) >= (
        stopped(runs)
    )
    listed = [d["name"] for d in json.loads(device_list.read_bytes())]
    (folder / "data").mkdir()
    api = free_port()
    config = folder / "nutbridge.toml"
    config.write_text(
        f'[source]\nkind = "simulator"\nstart = "12:00"\n[monitor]\npoll_interval = 0.5\n'
        f'[nut]\nport_file = "solar.dev"\nversion = "2.8.0"\ndriver_restart_command = ""\n'
        f'[datalog]\nfolder = "data"\n[api]\nlisten = "127.0.0.1:{api}"\ndashboard = false\n'
        f'[peers]\nnetwork_key = "{KEY}"\ndevice_list = "{device_list}"\nallow_addresses = {json.dumps(TEST_RANGES)}\n'
    )
    config.chmod(0o600)
    served, err, status = asyncio.run(run_daemon(config, port_file, api))
    assert status == 0, err
    text = port_file.read_text()
    assert text.startswith(HAND)  # the hand-written lines, kept first
    assert parse_values(text)["battery.charge.low"] == "25"
    assert not names(folder) & {"solar.dev-nocomms", ".solar.dev.nutbridge.tmp", ".solar.dev-nocomms.nutbridge.tmp"}
    assert served == listed  # the device list as the killed writes left it
    assert "Traceback" not in err


def polled(port_file: Path) -> bool:
    """The port file holds a poll of the simulator in the sun (under its own name)."""
    return port_file.exists() and parse_values(port_file.read_text()).get("ups.status", "").startswith("OL")


async def run_daemon(config: Path, port_file: Path, api: int) -> tuple[list[str], str, int | None]:
    """Start the daemon, wait until it has written a poll and serves the device list; stop it. (The device
    names it serves, its stderr, its exit status.)"""
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nutbridge", "-c", str(config), stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(GUARD):
            while not polled(port_file):  # noqa: ASYNC110 (another process writes the file)
                await asyncio.sleep(0.1)
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as http:
                while True:
                    try:
                        async with http.get(f"http://127.0.0.1:{api}/api/devices") as answer:
                            served = [d["name"] for d in await answer.json()]
                            break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.1)
    finally:
        daemon.terminate()
        _, err = await daemon.communicate()
    return served, err.decode(), daemon.returncode
