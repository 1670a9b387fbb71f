"""The peer side under generated input (hypothesis): whatever entries a peer posts or gossips, the device list
stays readable, within its byte caps, inside the address policy and with no stamp from the future; whatever a
peer answers to the election, the round completes and only a standing a node can report can win."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nutbridge.peers.announcer import parse_device_list
from nutbridge.peers.client import PeerClient
from nutbridge.peers.devices import MAX_LIST, DeviceList
from nutbridge.peers.election import Election
from nutbridge.peers.entry import MAX_ENTRY, DeviceError, stored_size, validate
from nutbridge.server.app import Sidecar
from tests.conftest import TEST_POLICY
from tests.helpers.peers import election_for, write_reading

NOW = 1_800_000_000.0
ME = "02:00:00:00:00:01"
ASTRAL = "\U0001d400"

texts = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.sampled_from([ASTRAL, "a", " ", "-", "é", "<"]), max_size=64),
    st.sampled_from(["", "UTC", "Etc/GMT+5", "../../etc", "\x00"]),
)
addresses = st.one_of(
    st.sampled_from(
        [
            "192.0.2.1",
            "192.0.2.7:8080",
            "[2001:db8::7]:8080",
            "127.0.0.1:22",
            "169.254.169.254",
            "0.0.0.0",
            "[::1]",
            "[fe80::1]:80",
            "224.0.0.1",
            "255.255.255.255",
            "10.0.0.1",
            "[::ffff:127.0.0.1]:8080",
            "1.1.1.1",
            "example.org",
            "192.0.2.1:0",
        ]
    ),
    st.ip_addresses().map(lambda ip: f"[{ip}]:8080" if ip.version == 6 else str(ip)),
    texts,
)
stamps = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e300", "-1e300", repr(NOW), repr(NOW - 86400), "nan", "", "0x10"]),
    st.integers(-(10**20), 10**20).map(str),
)
macs = st.one_of(
    st.integers(0, 2**48 - 1).map(lambda n: ":".join(f"{b:02x}" for b in n.to_bytes(6, "big"))),
    st.integers(0, 40).map(lambda n: f"02:00:00:00:00:{n:02x}"),  # collisions, and this node's own MAC
    texts,
)
logs = st.one_of(
    st.lists(
        st.one_of(st.just(ASTRAL * 40), st.just("2026-12-07 10:00:00.123456"), st.text(max_size=41)), max_size=300
    ),
    texts,
)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
json_any = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)
entries = st.fixed_dictionaries(
    {"mac": macs, "ip": addresses, "time stamp": stamps, "name": texts, "tz": texts, "log": logs},
    optional={"extra": json_any},
)
answers = st.lists(st.one_of(entries, json_any), max_size=40)


def check_invariants(devices: DeviceList) -> None:
    """What every node must hold to, whatever came in."""
    if devices.path.exists():
        raw = devices.path.read_bytes()
        assert len(raw) <= MAX_LIST
        assert isinstance(json.loads(raw), list)
    for device in devices.read():  # readable, and every entry one we would take
        assert stored_size(device) <= MAX_ENTRY
        assert devices.refusal(device) is None
        assert float(device.stamp) <= NOW


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer=answers, posted=st.lists(entries, max_size=10))
def test_gossip_and_posts_never_break_the_list(tmp_path_factory: pytest.TempPathFactory, answer: list[Any],
                                               posted: list[dict[str, Any]]) -> None:  # fmt: skip
    devices = DeviceList(tmp_path_factory.mktemp("list") / "deviceList.json", policy=TEST_POLICY, clock=lambda: NOW)
    body = json.dumps(answer).encode()
    devices.merge(parse_device_list(body), own_mac=ME)
    check_invariants(devices)
    for fields in posted:
        try:
            device = validate({**fields, "stamp": fields["time stamp"]})
            devices.upsert(device)
        except DeviceError:
            pass  # refused: that entry alone
        check_invariants(devices)


def test_the_list_never_grows_past_its_cap(tmp_path: Path) -> None:
    """Entries as large as one may be, from many MACs, through both ways in: the cap holds in bytes."""
    devices = DeviceList(tmp_path / "deviceList.json", policy=TEST_POLICY, clock=lambda: NOW)
    log = ",".join(["2026-12-07 10:00:00.123456"] * 240)  # with the name, just under MAX_ENTRY
    big = [validate({"mac": f"02:00:00:00:{n // 256:02x}:{n % 256:02x}", "ip": "192.0.2.1", "stamp": repr(NOW),
                     "name": ASTRAL * 64, "log": log}) for n in range(300)]  # fmt: skip
    devices.merge(big[:200], own_mac=ME)
    for device in big[200:]:
        with contextlib.suppress(DeviceError):
            devices.upsert(device)
    check_invariants(devices)
    assert MAX_LIST - MAX_ENTRY < devices.path.stat().st_size <= MAX_LIST  # filled to the cap, not past it


# --- the election -------------------------------------------------------------------------------------------


class Peer:
    """One peer in a thread of its own whose answers each example sets: /api/election, or v1's values."""

    def __init__(self) -> None:
        self.election: bytes | None = None
        self.values: dict[str, str] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        app = web.Application()
        app.router.add_get("/api/election", self.answer_election)
        app.router.add_get("/api/v1/chargecontroller.php", self.answer_value)
        self.sidecar = Sidecar(app, "127.0.0.1", 0)
        asyncio.run_coroutine_threadsafe(self.sidecar.__aenter__(), self.loop).result(30)

    async def answer_election(self, request: web.Request) -> web.Response:
        if self.election is None:
            return web.Response(status=404)
        return web.Response(body=self.election, content_type="application/json")

    async def answer_value(self, request: web.Request) -> web.Response:
        return web.Response(text=self.values.get(request.query.get("value", ""), ""))

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sidecar.__aexit__(None, None, None), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    running = Peer()
    yield running
    running.close()


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**400), 10**400), json_leaf)
standings = st.one_of(
    st.fixed_dictionaries(
        {
            "scaled_wattage": numbers,
            "battery_charge": numbers,
            "reading_age": numbers,
            "point_of_entry": st.one_of(st.booleans(), json_leaf),
        }
    ),
    json_any,
).map(lambda v: json.dumps(v).encode())
raw_bodies = st.one_of(standings, st.binary(max_size=200), st.just(b"[" * 100_000))
v1_answers = st.fixed_dictionaries(
    {
        "scaled-wattage": st.one_of(st.floats().map(repr), st.text(max_size=20)),
        "datetime": st.one_of(st.datetimes().map(str), st.text(max_size=40), st.just("0001-01-01 00:00:00")),
        "battery-percentage": st.one_of(st.floats().map(repr), st.text(max_size=20)),
    }
)


def plausible(watts: float, charge: float, age: float) -> bool:
    return (
        all(math.isfinite(v) for v in (watts, charge, age)) and 0 <= watts <= 1000 and 0 <= charge <= 100 and age >= 0
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(raw_bodies, st.none()), values=v1_answers, tz=st.sampled_from(["", "UTC", "Asia/Tokyo", "Nope/x"])
)
def test_no_answer_stops_a_round_and_only_a_real_standing_wins(
    peer: Peer, tmp_path_factory: pytest.TempPathFactory, body: bytes | None, values: dict[str, str], tz: str
) -> None:
    peer.election, peer.values = body, values
    me = tmp_path_factory.mktemp("me")
    write_reading(me, watts=2, charge=0.1)  # scaled 1 W: a sound standing beats it, any lie could
    devices = DeviceList(me / "deviceList.json", policy=TEST_POLICY)
    devices.upsert(validate({"mac": "02:00:00:00:00:66", "ip": f"127.0.0.1:{peer.sidecar.port}",
                             "stamp": repr(time.time()), "name": "Peer", "tz": tz}))  # fmt: skip

    async def one_round() -> Election:
        async with PeerClient(timeout=5, default_port=80, policy=TEST_POLICY) as client:
            election = election_for(me, devices, client, mac=ME, freshness=600)
            await election.round()
            return election

    election = asyncio.run(one_round())
    assert election.rounds == 1  # the round completed, whatever the peer said
    assert election.holder is not None
    if election.holder.mac != ME:
        holder = election.holder
        assert plausible(holder.watts, holder.charge, holder.age), holder
