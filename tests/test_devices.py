"""The device list: validation, one entry per MAC, expiry, atomic writes under concurrency, bad files kept."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from nutbridge.peers.devices import DeviceError, DeviceList, validate

NOW = 1_780_000_000.0


def fields(mac: str = "b8:27:eb:00:00:01", **kw: str) -> dict[str, str]:
    base = {"mac": mac, "ip": "192.0.2.10", "stamp": str(NOW), "name": "Solar Node", "tz": "America/New_York"}
    return base | {"log": "2026-12-01 10:00:00.1,2026-11-30 09:00:00.2"} | kw


def test_a_good_entry_keeps_v1_shape() -> None:
    device = validate(fields(mac="B8:27:EB:00:00:01", ip=" 2001:db8::1 "))
    assert device.as_json() == {
        "mac": "b8:27:eb:00:00:01",
        "ip": "2001:db8::1",
        "time stamp": str(NOW),
        "name": "Solar Node",
        "tz": "America/New_York",
        "log": ["2026-12-01 10:00:00.1", "2026-11-30 09:00:00.2"],
    }
    assert list(device.as_json()) == ["mac", "ip", "time stamp", "name", "tz", "log"]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"mac": "not-a-mac"}, "mac"),
        ({"ip": "http://evil.example/x"}, "ip"),  # v1 put this straight into URLs
        ({"ip": "192.0.2.1; rm -rf /"}, "ip"),
        ({"name": "../../etc/passwd"}, "name"),  # v1 made a file path of it
        ({"name": "<script>"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"stamp": "yesterday"}, "stamp"),
        ({"tz": "Europe/../../x"}, "tz"),
        ({"log": ",".join(["2026-12-01 10:00:00"] * 300)}, "log"),
    ],
)
def test_bad_fields_are_refused_by_name(kw: dict[str, str], message: str) -> None:
    with pytest.raises(DeviceError, match=f"^{message}:"):
        validate(fields(**kw))


def test_one_entry_per_mac_in_place_and_expiry(tmp_path: Path) -> None:
    clock = [NOW]
    store = DeviceList(tmp_path / "deviceList.json", expiry_days=1, clock=lambda: clock[0])
    _, existed = store.upsert(validate(fields("b8:27:eb:00:00:01")))
    assert not existed
    store.upsert(validate(fields("b8:27:eb:00:00:02", name="Second")))
    devices, existed = store.upsert(validate(fields("b8:27:eb:00:00:01", ip="192.0.2.99")))
    assert existed and [(d.mac, d.ip) for d in devices] == [
        ("b8:27:eb:00:00:01", "192.0.2.99"),
        ("b8:27:eb:00:00:02", "192.0.2.10"),
    ]
    clock[0] = NOW + 2 * 86400  # two days on: only a fresh post survives
    devices, _ = store.upsert(validate(fields("b8:27:eb:00:00:03", stamp=str(clock[0]))))
    assert [d.mac for d in devices] == ["b8:27:eb:00:00:03"]
    assert json.loads((tmp_path / "deviceList.json").read_text())[0]["time stamp"] == str(clock[0])


def test_a_bad_file_is_never_reset(tmp_path: Path) -> None:
    path = tmp_path / "deviceList.json"
    path.write_text('{"not": "a list"')
    store = DeviceList(path)
    with pytest.raises(DeviceError, match="is not a JSON list of devices; it is left as it is"):
        store.upsert(validate(fields()))
    assert path.read_text() == '{"not": "a list"'
    path.write_text(json.dumps([{"mac": "bad"}, {"mac": "b8:27:eb:00:00:09", "ip": "192.0.2.9", "time stamp": str(NOW),
                                 "name": "Kept", "tz": "", "log": [""]}]))  # fmt: skip
    assert [d.name for d in store.read()] == ["Kept"]  # the invalid entry is skipped, not the list


def test_concurrent_posts_lose_nothing_and_readers_always_see_json(tmp_path: Path) -> None:
    path = tmp_path / "deviceList.json"
    store = DeviceList(path, clock=lambda: NOW)
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
            store.upsert(validate(fields(f"b8:27:eb:00:00:{n:02x}", name=f"Node {n}", stamp=str(NOW + i))))

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
