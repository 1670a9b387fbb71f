"""The device list: one entry per MAC, expiry, atomic writes under concurrency, bad files kept, held stamps."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from nutbridge.peers.devices import DeviceList, written_when_due
from nutbridge.peers.entry import DeviceError, validate
from tests.conftest import TEST_POLICY, TEST_RANGES
from tests.helpers import GUARD, free_port
from tests.helpers.peers import NOW, entry_fields


def test_one_entry_per_mac_in_place_and_expiry(tmp_path: Path) -> None:
    clock = [NOW]
    store = DeviceList(tmp_path / "deviceList.json", expiry_days=1, clock=lambda: clock[0], policy=TEST_POLICY)
    _, existed = store.upsert(validate(entry_fields("b8:27:eb:00:00:01")))
    assert not existed
    store.upsert(validate(entry_fields("b8:27:eb:00:00:02", name="Second")))
    devices, existed = store.upsert(validate(entry_fields("b8:27:eb:00:00:01", ip="192.0.2.99")))
    assert existed and [(d.mac, d.ip) for d in devices] == [
        ("b8:27:eb:00:00:01", "192.0.2.99"),
        ("b8:27:eb:00:00:02", "192.0.2.10"),
    ]
    clock[0] = NOW + 2 * 86400  # two days on: only a fresh post survives
    devices, _ = store.upsert(validate(entry_fields("b8:27:eb:00:00:03", stamp=str(clock[0]))))
    assert [d.mac for d in devices] == ["b8:27:eb:00:00:03"]
    assert json.loads((tmp_path / "deviceList.json").read_text())[0]["time stamp"] == str(clock[0])


def test_a_bad_file_is_never_reset(tmp_path: Path) -> None:
    path = tmp_path / "deviceList.json"
    path.write_text('{"not": "a list"')
    store = DeviceList(path, policy=TEST_POLICY)
    with pytest.raises(DeviceError, match="is not a JSON list of devices; it is left as it is"):
        store.upsert(validate(entry_fields()))
    assert path.read_text() == '{"not": "a list"'
    path.write_text(json.dumps([{"mac": "bad"}, {"mac": "b8:27:eb:00:00:09", "ip": "192.0.2.9", "time stamp": str(NOW),
                                 "name": "Kept", "tz": "", "log": [""]}]))  # fmt: skip
    assert [d.name for d in store.read()] == ["Kept"]  # the invalid entry is skipped, not the list


def test_concurrent_posts_lose_nothing_and_readers_always_see_json(tmp_path: Path) -> None:
    path = tmp_path / "deviceList.json"
    store = DeviceList(path, clock=lambda: NOW + 100, policy=TEST_POLICY)  # the stamps are not from its future
    stop = threading.Event()
    seen_bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue
            try:
                assert isinstance(json.loads(text), list)
            except (ValueError, AssertionError):
                seen_bad.append(text)

    def peer(n: int) -> None:
        for i in range(20):
            store.upsert(validate(entry_fields(f"b8:27:eb:00:00:{n:02x}", name=f"Node {n}", stamp=str(NOW + i))))

    threads = [threading.Thread(target=reader)] + [threading.Thread(target=peer, args=(n,)) for n in range(50)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join(timeout=120)
    stop.set()
    threads[0].join()
    assert time.monotonic() - start < 120, "the posts did not finish"
    assert seen_bad == [], "a reader saw a half-written device list"
    devices = store.read()
    assert sorted(d.name for d in devices) == sorted(f"Node {n}" for n in range(50))
    assert all(d.stamp == str(NOW + 19) for d in devices)  # every peer's last update won


def stored(path: Path) -> dict[str, dict[str, object]]:
    return {entry["mac"]: entry for entry in json.loads(path.read_text())}


def test_a_new_stamp_alone_waits_for_its_window_and_a_real_change_writes_at_once(tmp_path: Path) -> None:
    path, ticks = tmp_path / "deviceList.json", [0.0]
    store = DeviceList(
        path, flush_interval=300, clock=lambda: NOW + ticks[0], monotonic=lambda: ticks[0], policy=TEST_POLICY
    )
    store.upsert(validate(entry_fields("b8:27:eb:00:00:01")))  # new: written
    store.upsert(validate(entry_fields("b8:27:eb:00:00:02", name="Second")))
    written = path.read_bytes()
    assert store.due() is None

    ticks[0] = 60.0  # the first node announces again: only its stamp is new
    devices, existed = store.upsert(validate(entry_fields("b8:27:eb:00:00:01", stamp=str(NOW + 60))))
    assert existed and devices[0].stamp == str(NOW + 60)
    assert path.read_bytes() == written  # not rewritten...
    assert store.read()[0].stamp == str(NOW + 60)  # ...but the daemon's readers have it
    assert json.loads(store.text())[0]["time stamp"] == str(NOW + 60)  # and v1's raw list
    assert store.due() == 300

    ticks[0] = 120.0  # the second changes its address: written at once, with the first one's held stamp
    store.upsert(validate(entry_fields("b8:27:eb:00:00:02", name="Second", ip="192.0.2.20", stamp=str(NOW + 120))))
    on_disk = stored(path)
    assert on_disk["b8:27:eb:00:00:01"]["time stamp"] == str(NOW + 60)
    assert on_disk["b8:27:eb:00:00:02"]["ip"] == "192.0.2.20"
    assert store.due() is None

    ticks[0] = 200.0
    store.upsert(validate(entry_fields("b8:27:eb:00:00:02", name="Second", ip="192.0.2.20", stamp=str(NOW + 200))))
    ticks[0] = 500.0
    assert store.due() == 0
    store.flush()
    assert stored(path)["b8:27:eb:00:00:02"]["time stamp"] == str(NOW + 200)
    assert store.due() is None


def test_a_node_that_expires_leaves_the_file_with_the_next_announcement(tmp_path: Path) -> None:
    path, now = tmp_path / "deviceList.json", [NOW]
    store = DeviceList(path, expiry_days=1, flush_interval=300, clock=lambda: now[0], policy=TEST_POLICY)
    store.upsert(validate(entry_fields("b8:27:eb:00:00:01")))
    store.upsert(validate(entry_fields("b8:27:eb:00:00:02", name="Silent")))
    now[0] = NOW + 86400 + 1  # a day on, the first announces again; the second has not been heard from
    store.upsert(validate(entry_fields("b8:27:eb:00:00:01", stamp=str(now[0]))))
    assert list(stored(path)) == ["b8:27:eb:00:00:01"]
    assert stored(path)["b8:27:eb:00:00:01"]["time stamp"] == str(now[0])


def test_gossip_that_only_restamps_is_held_and_gossip_that_adds_is_written(tmp_path: Path) -> None:
    path = tmp_path / "deviceList.json"
    store = DeviceList(path, flush_interval=300, clock=lambda: NOW + 100, policy=TEST_POLICY)
    store.upsert(validate(entry_fields("b8:27:eb:00:00:01")))
    written = path.read_bytes()
    assert (
        store.merge([validate(entry_fields("b8:27:eb:00:00:01", stamp=str(NOW + 50)))], own_mac="02:00:00:00:00:00")
        == []
    )
    assert path.read_bytes() == written and store.read()[0].stamp == str(NOW + 50)
    new = validate(entry_fields("b8:27:eb:00:00:03", name="Third"))
    assert store.merge([new], own_mac="02:00:00:00:00:00") == [new]
    assert {mac: e["time stamp"] for mac, e in stored(path).items()} == {
        "b8:27:eb:00:00:01": str(NOW + 50),
        "b8:27:eb:00:00:03": str(NOW),
    }


async def test_held_stamps_are_written_when_due_and_when_the_daemon_stops(tmp_path: Path) -> None:
    path = tmp_path / "deviceList.json"
    soon = DeviceList(path, flush_interval=0.05, clock=lambda: NOW + 100, policy=TEST_POLICY)
    soon.upsert(validate(entry_fields()))
    async with written_when_due(soon):
        soon.upsert(validate(entry_fields(stamp=str(NOW + 1))))
        assert stored(path)["b8:27:eb:00:00:01"]["time stamp"] == str(NOW)
        for _ in range(int(GUARD / 0.05)):  # until the writer is due; a guard against a hang
            await asyncio.sleep(0.05)
            if stored(path)["b8:27:eb:00:00:01"]["time stamp"] == str(NOW + 1):
                break
        assert stored(path)["b8:27:eb:00:00:01"]["time stamp"] == str(NOW + 1)

    late = DeviceList(path, flush_interval=3600, clock=lambda: NOW + 100, policy=TEST_POLICY)
    async with written_when_due(late):
        late.upsert(validate(entry_fields(stamp=str(NOW + 2))))
        assert stored(path)["b8:27:eb:00:00:01"]["time stamp"] == str(NOW + 1)
    assert stored(path)["b8:27:eb:00:00:01"]["time stamp"] == str(NOW + 2)  # a clean stop loses none


def test_the_daemon_holds_a_known_peers_stamp_serves_it_and_writes_it_when_stopped(tmp_path: Path) -> None:
    """The real daemon with its default window: a new peer is written at once, its next announcement only
    when the daemon stops (SIGTERM, as systemd stops it), and served from memory in between."""
    key, api = "the device list daemon test key", free_port()
    config = tmp_path / "nutbridge.toml"
    config.write_text(
        '[source]\nkind = "simulator"\n[monitor]\npoll_interval = 0.5\n'
        '[nut]\nport_file = "solar.dev"\nversion = "2.8.0"\ndriver_restart_command = ""\n'
        f'[datalog]\nfolder = "data"\n[api]\nlisten = "127.0.0.1:{api}"\ndashboard = false\n'
        f'[peers]\nnetwork_key = "{key}"\nallow_addresses = {json.dumps(TEST_RANGES)}\n'
    )
    config.chmod(0o600)
    (tmp_path / "solar.dev").touch()
    path = tmp_path / "data" / "deviceList.json"
    url = f"http://127.0.0.1:{api}"

    def post(stamp: str) -> None:
        form = {"api_key": key, "stamp": stamp, "ip": "192.0.2.7", "mac": "b8:27:eb:00:00:07", "name": "Peer"}
        urllib.request.urlopen(f"{url}/api/v1/api.php", data=urllib.parse.urlencode(form).encode(), timeout=10).read()

    def served() -> str:
        request = urllib.request.Request(f"{url}/api/devices", headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return str(json.load(answer)[0]["time stamp"])

    first, second = repr(time.time() - 60), repr(time.time())
    daemon = subprocess.Popen([sys.executable, "-m", "nutbridge", "-c", str(config)], cwd=tmp_path,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        for _ in range(300):  # until it listens; a guard against a hang, not a timing
            with contextlib.suppress(ConnectionError), socket.create_connection(("127.0.0.1", api)):
                break
            assert daemon.poll() is None, daemon.communicate()[1].decode()
            time.sleep(0.1)
        post(first)
        assert stored(path)["b8:27:eb:00:00:07"]["time stamp"] == first  # new: written at once
        post(second)
        assert served() == second
        query = urllib.parse.urlencode({"day": "deviceList", "api_key": key})
        raw = urllib.request.urlopen(f"{url}/api/v1/chargecontroller.php?{query}", timeout=10).read()
        assert json.loads(raw)[0]["time stamp"] == second
        assert stored(path)["b8:27:eb:00:00:07"]["time stamp"] == first  # held
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err.decode()
    assert stored(path)["b8:27:eb:00:00:07"]["time stamp"] == second


def test_a_mac_keeps_its_case_and_the_case_never_makes_two_nodes(tmp_path: Path) -> None:
    """v1 stores the MAC as sent and its clients find themselves in a list by their own spelling: so the list
    keeps it; one node posting in either case is still one entry (v1 would make two), and it keeps its place."""
    devices = DeviceList(tmp_path / "deviceList.json", policy=TEST_POLICY, clock=lambda: NOW + 10)
    devices.upsert(validate(entry_fields(mac="B8:27:EB:00:00:01")))
    devices.upsert(validate(entry_fields(mac="dc:a6:32:00:00:02", name="Other")))
    listed, _ = devices.upsert(validate(entry_fields(mac="b8:27:eb:00:00:01", stamp=str(NOW + 1))))
    assert [d.mac for d in listed] == ["b8:27:eb:00:00:01", "dc:a6:32:00:00:02"]
    learned = validate(entry_fields(mac="DC:A6:32:00:00:02", name="Other", stamp=str(NOW + 2)))
    devices.merge([learned], own_mac="B8:27:EB:00:00:01")
    assert [d.mac for d in devices.current()] == ["b8:27:eb:00:00:01", "DC:A6:32:00:00:02"]
    own = validate(entry_fields(mac="b8:27:eb:00:00:01", name="Impostor", stamp=str(NOW + 3)))
    assert devices.merge([own], own_mac="B8:27:EB:00:00:01") == []  # our own entry, whatever its case
