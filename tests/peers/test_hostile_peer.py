"""One peer that holds the network key and lies: each finding of issue 16 (1-5) against a running node on
loopback. The namespaced network with a hostile fourth node is in test_peer_network.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from nutbridge.config import load
from nutbridge.datalog.reader import DayCache
from nutbridge.errors import ConfigError
from nutbridge.node import Node
from nutbridge.peers.addresses import AddressPolicy
from nutbridge.peers.announcer import Announcer
from nutbridge.peers.budget import ChangeBudget
from nutbridge.peers.client import PeerClient, PeerError
from nutbridge.peers.devices import MAX_FILE, MAX_LIST, DeviceList
from nutbridge.peers.election import Election
from nutbridge.peers.entry import MAX_ENTRY, validate
from nutbridge.peers.identity import Identity
from nutbridge.peers.network import PeerNetwork
from nutbridge.peers.poelog import PoeLog
from nutbridge.server.app import Sidecar, make_app
from tests.conftest import TEST_POLICY
from tests.helpers.peers import election_for, write_reading

KEY = "the hostile peer test's network key"
ASTRAL = "\U0001d400"  # MATHEMATICAL BOLD CAPITAL A: one letter, 4 bytes of UTF-8, 12 escaped in JSON
HONEST_MAC = "02:00:00:00:00:01"


@dataclass
class Running:
    url: str
    devices: DeviceList
    folder: Path


@contextlib.asynccontextmanager
async def running_node(tmp_path: Path, policy: AddressPolicy = TEST_POLICY) -> AsyncIterator[Running]:
    folder = tmp_path / "node"
    devices = DeviceList(folder / "deviceList.json", policy=policy)
    app = make_app(folder, devices=devices, network_key=KEY, node=Node({"name": "honest"}))
    async with Sidecar(app, "127.0.0.1", 0) as sidecar:
        yield Running(f"http://127.0.0.1:{sidecar.port}", devices, folder)


def form(fields: dict[str, str]) -> bytes:
    """A v1 form as v1's client builds it: by hand, the values as they are (UTF-8, not percent-encoded)."""
    return "&".join(f"{k}={v}" for k, v in fields.items()).encode()


def post_fields(
    mac: str, ip: str, *, name: str = "Honest node", log: str = "", stamp: float | None = None
) -> dict[str, str]:
    stamp = time.time() if stamp is None else stamp
    return {"api_key": KEY, "stamp": repr(stamp), "ip": ip, "mac": mac, "name": name, "tz": "UTC", "log": log}


async def post_v1(http: ClientSession, url: str, fields: dict[str, str]) -> str:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with http.post(f"{url}/api/v1/api.php", data=form(fields), headers=headers) as answer:
        assert answer.status == 200
        return await answer.text()


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "refused" in r.getMessage()]


# --- 1. the device list cannot be made unreadable -------------------------------------------------------


async def test_bloated_posts_are_refused_alone_and_the_list_stays_readable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_node(tmp_path) as node, ClientSession() as http:
        assert await post_v1(http, node.url, post_fields(HONEST_MAC, "192.0.2.1")) == ""  # the first post: v1's ""
        bloat = ",".join([ASTRAL * 40] * 256)  # 256 log entries of 40 letters: 123 KB stored, 41 KB posted
        for n in range(35):
            fields = post_fields(f"02:00:00:00:01:{n:02x}", f"192.0.2.{n + 10}", name=ASTRAL * 64, log=bloat)
            assert await post_v1(http, node.url, fields) == "", "a bloated entry was taken"
        assert node.devices.path.stat().st_size <= MAX_LIST
        async with http.get(f"{node.url}/api/devices", headers={"Authorization": f"Bearer {KEY}"}) as answer:
            assert answer.status == 200
            assert [d["mac"] for d in await answer.json()] == [HONEST_MAC]
        answer_text = await post_v1(http, node.url, post_fields("02:00:00:00:00:02", "192.0.2.2", name="Newcomer"))
        assert [d["name"] for d in json.loads(answer_text)] == ["Honest node", "Newcomer"]  # still takes peers
    lines = refusals(caplog)
    assert len(lines) == 1, lines  # 35 refused posts from one sender, one line
    assert f"over the {MAX_ENTRY} a node's entry may take" in lines[0]


async def test_a_full_list_refuses_a_new_entry_alone_and_keeps_taking_updates(tmp_path: Path) -> None:
    log = ",".join(["2026-12-07 10:00:00.123456"] * 256)
    async with running_node(tmp_path) as node, ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as http:
        stamp, n = time.time(), 0
        while True:  # entries near the entry cap, until the list's byte cap refuses one
            entry = {"mac": f"02:00:00:00:{n // 256:02x}:{n % 256:02x}", "ip": f"192.0.2.{n % 250 + 1}:{8000 + n}",
                     "stamp": stamp, "name": f"Node {n}", "tz": "UTC", "log": log}  # fmt: skip
            async with http.post(f"{node.url}/api/devices", json=entry) as answer:
                if answer.status != 200:
                    assert answer.status == 422
                    assert "over its cap of 1048576" in (await answer.json())["error"]
                    break
            n += 1
        assert 100 < n < 1000
        assert node.devices.path.stat().st_size <= MAX_LIST
        first = {"mac": "02:00:00:00:00:00", "ip": "192.0.2.1:8000", "stamp": stamp + 1, "name": "Node 0",
                 "tz": "UTC", "log": log}  # fmt: skip
        async with http.post(f"{node.url}/api/devices", json=first) as answer:  # a node we hold announces again
            assert answer.status == 200
            assert len(await answer.json()) == n
        async with http.get(f"{node.url}/api/devices") as answer:
            assert answer.status == 200


async def test_no_error_shows_a_server_path_and_the_raw_list_is_capped(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node, ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as http:
        node.devices.path.parent.mkdir(parents=True, exist_ok=True)
        node.devices.path.write_text('{"not": "a list"}')
        async with http.get(f"{node.url}/api/devices") as answer:
            assert answer.status == 503
            body = await answer.text()
        assert "deviceList.json" in body and str(tmp_path) not in body

        entry = validate({"mac": HONEST_MAC, "ip": "192.0.2.1", "stamp": "1", "name": "Big"}).as_json()
        node.devices.path.write_text(json.dumps([entry] * (MAX_FILE // len(json.dumps(entry)) + 10)))
        assert node.devices.path.stat().st_size > MAX_FILE  # a file no node of ours wrote (v1's, or planted)
        params = {"day": "deviceList", "api_key": KEY}
        async with http.get(f"{node.url}/api/v1/chargecontroller.php", params=params) as answer:
            assert answer.status == 200
            assert await answer.read() == b""  # not 4 MiB to whoever holds the key


# --- 5. a stamp from the future counts as now -----------------------------------------------------------


def test_a_posted_stamp_from_the_future_is_stored_as_now(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    devices = DeviceList(tmp_path / "deviceList.json", policy=TEST_POLICY, clock=lambda: now)
    for stamp in ("1e300", repr(now + 86400)):
        devices.upsert(validate({"mac": HONEST_MAC, "ip": "192.0.2.1", "stamp": stamp, "name": "Liar"}))
        assert float(json.loads(devices.path.read_text())[0]["time stamp"]) == now


# --- 4. the network key goes only where the policy lets it --------------------------------------------------

REFUSED = ["127.0.0.1:22", "169.254.169.254", "0.0.0.0", "[::1]:8080", "[fe80::1]:8080", "224.0.0.1",
           "255.255.255.255", "[::ffff:127.0.0.1]:8080", "10.0.0.1", "[fd00::1]:8080", "100.64.0.1", "[::]:8080",
           "240.0.0.1", "[ff02::1]:8080", "192.0.2.7:25"]  # fmt: skip


@pytest.mark.parametrize("address", REFUSED)
async def test_a_posted_entry_at_a_refused_address_is_stored_nowhere(tmp_path: Path, address: str) -> None:
    policy = AddressPolicy.from_ranges(["192.0.2.0/24"])  # as a node of a private network would allow
    async with running_node(tmp_path, policy) as node, ClientSession() as http:
        assert await post_v1(http, node.url, post_fields(HONEST_MAC, "192.0.2.1")) == ""
        assert await post_v1(http, node.url, post_fields("02:00:00:00:00:66", address, name="Evil")) == ""
        entry = {"mac": "02:00:00:00:00:67", "ip": address, "stamp": time.time(), "name": "Evil"}
        async with http.post(f"{node.url}/api/devices", json=entry, headers={"X-Network-Key": KEY}) as answer:
            assert answer.status == 422
            assert "ip:" in (await answer.json())["error"]
    assert [d.name for d in node.devices.read()] == ["Honest node"]


def test_the_address_rule() -> None:
    strict = AddressPolicy(peer_port=8080)
    assert strict.refusal("198.51.100.7", 80) is not None  # documentation ranges are not public
    assert strict.refusal("1.1.1.1", 80) is None
    assert strict.refusal("2606:4700::1111", 443) is None
    assert strict.refusal("1.1.1.1", 8080) is None and strict.refusal("1.1.1.1", 8081) is None
    assert "port 22" in (strict.refusal("1.1.1.1", 22) or "")
    lan = AddressPolicy.from_ranges(["127.0.0.0/8", "::1/128", "10.77.0.0/24", "0.0.0.0/0"])
    assert lan.refusal("10.77.0.3", 80) is None and lan.refusal("::1", 80) is None
    assert lan.refusal("::ffff:127.0.0.1", 80) is None  # mapped: judged as 127.0.0.1
    for never in ("169.254.169.254", "0.0.0.0", "fe80::1", "224.0.0.1", "255.255.255.255", "::", "ff02::1"):
        assert "never a peer" in (lan.refusal(never, 80) or ""), never  # whatever the list says
    assert "stands for 127.0.0.1" in (strict.refusal("::ffff:127.0.0.1", 80) or "")
    assert "stands for 127.0.0.1" in (strict.refusal("2002:7f00:1::", 80) or "")  # 6to4


class Listener:
    """A TCP listener that counts connections: where nothing may arrive."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self, host: str) -> int:
        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self.server = await asyncio.start_server(accepted, host, 0)
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


def announcer(devices: DeviceList, client: PeerClient, seeds: list[str], **kwargs: object) -> Announcer:
    identity = Identity(mac=HONEST_MAC, name="honest", tz="UTC", ip="127.0.0.1:1024", port=1024, peer_port=80)
    return Announcer(identity=identity, devices=devices, client=client, network_key=KEY, seeds=seeds,
                     poe_log=PoeLog(devices.path.with_name("poe.log")), interval=60, **kwargs)  # type: ignore[arg-type]  # fmt: skip


async def test_gossip_naming_a_refused_address_is_not_stored_and_never_asked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trap = Listener()
    trap_port = await trap.start("127.0.0.2")  # loopback, but outside what this node allows

    async def gossip(request: web.Request) -> web.Response:  # a key holder's answer: its list, with a trap in it
        now = repr(time.time())
        entries = [
            {"mac": "02:00:00:00:00:66", "ip": f"127.0.0.2:{trap_port}", "time stamp": now, "name": "Trap"},
            {"mac": "02:00:00:00:00:67", "ip": "169.254.169.254", "time stamp": now, "name": "Metadata"},
        ]
        return web.json_response(entries)

    app = web.Application()
    app.router.add_post("/api/v1/api.php", gossip)
    policy = AddressPolicy.from_ranges(["127.0.0.1/32"])
    devices = DeviceList(tmp_path / "deviceList.json", policy=policy)
    caplog.set_level(logging.INFO)
    async with Sidecar(app, "127.0.0.1", 0) as liar, PeerClient(timeout=2, default_port=80, policy=policy) as client:
        node = announcer(devices, client, [f"127.0.0.1:{liar.port}"])
        for _ in range(3):
            await node.round()
        with pytest.raises(PeerError, match="not asked"):  # and the client itself refuses it, whatever asks
            await client.get(f"127.0.0.2:{trap_port}", "/", {})
    local_trap = Listener()
    local_port = await local_trap.start("127.0.0.1")
    async with PeerClient(timeout=2, default_port=80) as strict:  # a host name is judged by what it resolves to
        with pytest.raises(PeerError, match="resolves only to refused addresses"):
            await strict.get(f"localhost:{local_port}", "/", {})
    trap.close()
    local_trap.close()
    assert trap.connections == local_trap.connections == 0
    assert {d.name for d in devices.read()} == {"honest"}
    said = [r.getMessage() for r in caplog.records if "refuses" in r.getMessage()]
    assert len(said) == 1, said  # three rounds, one line


async def test_a_round_posts_to_at_most_max_posts_peers(tmp_path: Path) -> None:
    hits: list[int] = []

    async def count(request: web.Request) -> web.Response:
        hits.append(request.url.port or 0)
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/api/v1/api.php", count)
    runner = web.AppRunner(app)
    await runner.setup()
    sites = [web.TCPSite(runner, "127.0.0.1", 0) for _ in range(10)]
    for site in sites:
        await site.start()
    ports = [s._server.sockets[0].getsockname()[1] for s in sites]  # type: ignore[union-attr]
    devices = DeviceList(tmp_path / "deviceList.json", policy=TEST_POLICY)
    devices.merge(
        [
            validate(
                {
                    "mac": f"02:00:00:00:02:{i:02x}",
                    "ip": f"127.0.0.1:{p}",
                    "stamp": repr(time.time()),
                    "name": f"Peer {i}",
                }
            )
            for i, p in enumerate(ports)
        ],
        own_mac=HONEST_MAC,
    )
    try:
        async with PeerClient(timeout=2, default_port=80, policy=TEST_POLICY) as client:
            await announcer(devices, client, [], max_posts=3).round()
    finally:
        await runner.cleanup()
    assert len(hits) == 3


def test_a_configured_seed_at_a_refused_address_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    config_path = tmp_path / "n.toml"
    config_path.write_text(
        '[source]\nkind = "simulator"\n[datalog]\nfolder = "data"\n[api]\nlisten = "127.0.0.1:8080"\n'
        f'[peers]\nnetwork_key = "{KEY}"\nmac = "{HONEST_MAC}"\nannounce = true\npeers = ["169.254.169.254"]\n'
    )
    config_path.chmod(0o600)
    config = load(config_path)
    devices = DeviceList(tmp_path / "data" / "deviceList.json")
    with pytest.raises(ConfigError, match=r"peers\.peers: 169\.254\.169\.254: .*link-local"):
        PeerNetwork.from_config(config, cache=DayCache(tmp_path / "data"), devices=devices, node=Node({}))


# --- 2 and 3. what a peer answers to the election is data -----------------------------------------------


@contextlib.asynccontextmanager
async def liar_and_election(tmp_path: Path, answers: Mapping[str, object]) -> AsyncIterator[Election]:
    """An election whose one peer answers ``answers[path or value]`` (text as it is, anything else as JSON);
    this node reads 30 scaled W now."""

    async def handle(request: web.Request) -> web.Response:
        answer = answers.get(request.query.get("value", request.path))
        if answer is None:
            return web.Response(status=404)
        return web.Response(text=answer) if isinstance(answer, str) else web.json_response(answer)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    me = tmp_path / "me"
    write_reading(me, watts=60, charge=0.5)
    async with (
        Sidecar(app, "127.0.0.1", 0) as liar,
        PeerClient(timeout=2, default_port=80, policy=TEST_POLICY) as client,
    ):
        devices = DeviceList(me / "deviceList.json", policy=TEST_POLICY)
        devices.upsert(validate({"mac": "02:00:00:00:00:66", "ip": f"127.0.0.1:{liar.port}", "stamp": repr(time.time()),
                                 "name": "Liar", "tz": ""}))  # fmt: skip
        yield election_for(me, devices, client, mac=HONEST_MAC)


@pytest.mark.parametrize("datetime", ["0001-01-01 00:00:00", "9999-12-31 23:59:59", "2026-13-45 99:99:99", "x" * 5000])
async def test_a_v1_peers_impossible_datetime_leaves_it_out_and_the_rounds_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, datetime: str
) -> None:
    answers = {"scaled-wattage": "45", "datetime": datetime, "battery-percentage": "1"}
    async with liar_and_election(tmp_path, answers) as election:
        for _ in range(3):
            await election.round()
        assert election.rounds == 3 and election.point_of_entry
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(left_out) == 1, left_out  # once per change, not every round


@pytest.mark.parametrize(
    "standing",
    [
        {"scaled_wattage": 1e308, "battery_charge": 100, "reading_age": -1e300},
        {"scaled_wattage": 1e308, "battery_charge": 100, "reading_age": 1},
        {"scaled_wattage": 45, "battery_charge": 100, "reading_age": -5},
        {"scaled_wattage": 45, "battery_charge": 101, "reading_age": 1},
        {"scaled_wattage": -1, "battery_charge": 100, "reading_age": 1},
    ],
)
async def test_impossible_numbers_never_win_the_point_of_entry(tmp_path: Path, standing: dict[str, float]) -> None:
    answers = {"/api/election": {**standing, "point_of_entry": True}}
    async with liar_and_election(tmp_path, answers) as election:
        await election.round()
        assert election.point_of_entry, election.holder


async def test_an_honest_sunnier_peer_still_wins(tmp_path: Path) -> None:
    """The bounds leave every honest standing in: the test above does not pass by refusing everyone."""
    standing = {"scaled_wattage": 45, "battery_charge": 80.5, "reading_age": 0.5, "point_of_entry": False}
    async with liar_and_election(tmp_path, {"/api/election": standing}) as election:
        await election.round()
        assert election.holder is not None and election.holder.mac == "02:00:00:00:00:66"


# --- how often one sender may rewrite the list ------------------------------------------------------------


async def test_one_sender_may_change_the_list_only_so_often(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "node"
    devices = DeviceList(folder / "deviceList.json", policy=TEST_POLICY, budget=ChangeBudget(3))
    app = make_app(folder, devices=devices, network_key=KEY, node=Node({}))
    async with Sidecar(app, "127.0.0.1", 0) as sidecar, ClientSession(headers={"X-Network-Key": KEY}) as http:
        url = f"http://127.0.0.1:{sidecar.port}/api/devices"
        for n in range(3):  # three new nodes from one sender: each rewrites the list
            entry = {"mac": f"02:00:00:00:03:{n:02x}", "ip": "192.0.2.3", "stamp": time.time(), "name": f"N{n}"}
            async with http.post(url, json=entry) as answer:
                assert answer.status == 200
        async with http.post(url, json={**entry, "mac": "02:00:00:00:03:09"}) as answer:
            assert answer.status == 429
            assert 3500 < int(answer.headers["Retry-After"]) <= 3600
        async with http.post(url, json={**entry, "name": "Renamed"}) as answer:  # new content: a change too
            assert answer.status == 429
        async with http.post(url, json={**entry, "stamp": time.time()}) as answer:  # announcing again: none
            assert answer.status == 200
        assert (
            await post_v1(http, f"http://127.0.0.1:{sidecar.port}", post_fields("02:00:00:00:03:0a", "192.0.2.4")) == ""
        )
    assert [d.name for d in devices.read()] == ["N0", "N1", "N2"]
    assert len([m for m in refusals(caplog) if "rate:" in m]) == 2  # one a route, not one a post


def test_the_change_budget_is_an_hour_wide_per_sender() -> None:
    now = [0.0]
    budget = ChangeBudget(2, monotonic=lambda: now[0])
    assert budget.take("a") == budget.take("a") == 0
    assert budget.take("a") == 3600
    assert budget.take("b") == 0  # another sender has its own
    now[0] = 1800
    assert budget.take("a") == 1800
    now[0] = 3600
    assert budget.take("a") == 0  # the first change left the window
