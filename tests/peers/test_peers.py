"""The announcer and the election, in one process: nodes are sidecars on loopback ports, talking real HTTP.

The namespaced three-node network is in test_peer_network.py; here are the rules one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from nutbridge.errors import ConfigError
from nutbridge.node import Node
from nutbridge.peers.announcer import parse_device_list
from nutbridge.peers.client import MAX_ANSWER, PeerClient, PeerError, base_url
from nutbridge.peers.devices import DeviceList
from nutbridge.peers.election import Candidate, Election, age_of, choose, from_election_answer, zone_of
from nutbridge.peers.entry import DeviceError, address, validate
from nutbridge.peers.identity import interface_mac
from nutbridge.peers.poelog import MAX_FILE, PoeLog
from nutbridge.server.app import Sidecar
from tests.conftest import TEST_POLICY
from tests.helpers.peers import LoopbackNode, announcer_for, election_for, serving, write_reading

# --- addresses and the device list ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("192.0.2.7:8080", "192.0.2.7:8080"),
        ("2001:DB8::7", "2001:db8::7"),
        ("[2001:db8::7]:8080", "[2001:db8::7]:8080"),
    ],
)
def test_an_address_may_carry_the_port_v1_appends(given: str, stored: str) -> None:
    assert address(given) == stored
    host_port = base_url(stored, 80)
    assert host_port.startswith("http://") and host_port.endswith(":8080" if "8080" in stored else ":80")


@pytest.mark.parametrize("bad", ["example.org", "192.0.2.7:0", "192.0.2.7:99999", "[2001:db8::7", "1.2.3.4:80/x"])
def test_an_address_that_is_no_ip_is_refused(bad: str) -> None:
    with pytest.raises(DeviceError, match="ip"):
        address(bad)


def entry(mac: str, stamp: float, name: str = "Peer") -> dict[str, str]:
    return {"mac": mac, "ip": "192.0.2.9", "stamp": repr(stamp), "name": name, "tz": "UTC", "log": ""}


def test_merge_takes_new_and_newer_entries_only(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    store = DeviceList(tmp_path / "deviceList.json", expiry_days=1, clock=lambda: now[0], policy=TEST_POLICY)
    store.upsert(validate(entry("02:00:00:00:00:01", now[0] - 10, "Held")))
    learned = [
        validate(entry("02:00:00:00:00:01", now[0] - 100, "Older")),  # older than ours: ignored
        validate(entry("02:00:00:00:00:02", now[0] - 5, "New")),
        validate(entry("02:00:00:00:00:03", now[0] - 2 * 86400, "Expired")),  # past the expiry: ignored
        validate(entry("02:00:00:00:00:04", now[0] + 10**6, "Future")),  # another clock: counts as now
        validate(entry("02:00:00:00:00:ff", now[0], "Me")),  # this node's own entry is never taken from others
    ]
    new = store.merge(learned, own_mac="02:00:00:00:00:ff")
    assert [d.name for d in new] == ["New", "Future"]
    stored = {d.name: d for d in store.current()}
    assert set(stored) == {"Held", "New", "Future"}
    assert float(stored["Future"].stamp) == now[0]
    assert store.merge([validate(entry("02:00:00:00:00:01", now[0], "Renamed"))], own_mac="") == []
    assert {d.name for d in store.current()} == {"Renamed", "New", "Future"}  # a newer entry replaces ours
    now[0] += 2 * 86400
    assert store.current() == []  # nobody heard from within a day


def test_a_peers_answer_is_validated_entry_by_entry() -> None:
    good = entry("02:00:00:00:00:01", 1_800_000_000.0)
    answer = [
        {**good, "time stamp": good["stamp"], "log": ["2026-12-01 10:00:00.1"]},
        {"mac": "junk", "ip": "192.0.2.1"},
        "not an object",
        {**good, "mac": "02:00:00:00:00:02", "ip": "http://evil/", "time stamp": "1"},
    ]
    devices = parse_device_list(json.dumps(answer).encode())
    assert [(d.mac, d.log) for d in devices] == [("02:00:00:00:00:01", ("2026-12-01 10:00:00.1",))]
    assert parse_device_list(b"") == parse_device_list(b"<html>") == parse_device_list(b'{"a": 1}') == []


# --- the announcer ---------------------------------------------------------------------------------------


async def test_announcing_learns_every_node_a_peer_knows_and_reaches_them(tmp_path: Path) -> None:
    async with (
        serving(tmp_path, "hub") as hub,
        serving(tmp_path, "leaf1") as leaf1,
        serving(tmp_path, "leaf2") as leaf2,
        serving(tmp_path, "newcomer") as newcomer,
        PeerClient(timeout=2, default_port=80, policy=TEST_POLICY) as client,
    ):
        for leaf, mac in ((leaf1, "02:00:00:00:00:01"), (leaf2, "02:00:00:00:00:02")):
            await announcer_for(leaf, mac, client, [hub.address]).round()
        await announcer_for(hub, "02:00:00:00:00:0a", client, []).round()
        assert {d.name for d in hub.devices.current()} == {"hub", "leaf1", "leaf2"}

        # One round: the newcomer knows only the hub, learns both leaves from its answer, and announces to them.
        await announcer_for(newcomer, "02:00:00:00:00:0b", client, [hub.address]).round()
        assert {d.name for d in newcomer.devices.current()} == {"hub", "leaf1", "leaf2", "newcomer"}
        for leaf in (leaf1, leaf2):
            stored = {d.name: d for d in leaf.devices.current()}["newcomer"]
            assert stored.ip == newcomer.address
            assert stored.tz == "Etc/GMT+5"  # the '+' arrived: the form is URL-encoded, unlike v1's


async def test_a_wrong_key_or_dead_peer_is_logged_once_and_the_round_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(tmp_path, "peer") as peer, PeerClient(timeout=1, default_port=80, policy=TEST_POLICY) as client:
        me = tmp_path / "me"
        write_reading(me, watts=1, charge=0.5)
        node = LoopbackNode(
            me, DeviceList(me / "deviceList.json", policy=TEST_POLICY), Node({}), port=1024
        )  # nothing listens: this node only announces
        announcer = announcer_for(node, "02:00:00:00:00:01", client, [peer.address, "127.0.0.1:9"])
        announcer.network_key = "not the network key"
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                await announcer.round()
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert sum("refused this node's network key" in w for w in warnings) == 1
        assert sum(w.startswith("announcing to 127.0.0.1:9:") for w in warnings) == 1  # closed port
        assert not any(announcer.network_key in r.getMessage() for r in caplog.records)  # never logged
        assert peer.devices.current() == []


async def test_an_answer_over_the_cap_is_refused(tmp_path: Path) -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(MAX_ANSWER // 65536 + 2):
            await response.write(b" " * 65536)
        return response

    app = web.Application()
    app.router.add_post("/api/v1/api.php", huge)
    async with (
        Sidecar(app, "127.0.0.1", 0) as flood,
        PeerClient(timeout=5, default_port=80, policy=TEST_POLICY) as client,
    ):
        with pytest.raises(PeerError, match="over 1024 KiB"):
            await client.post_form(f"127.0.0.1:{flood.port}", "/api/v1/api.php", {"a": "b"})


# --- the election ----------------------------------------------------------------------------------------


def c(mac: str, watts: float, charge: float = 50, claims: bool = False) -> Candidate:
    return Candidate(mac, watts, charge, age=1.0, claims=claims)


def test_the_sunniest_node_wins_and_ties_break_the_same_way_everywhere() -> None:
    assert choose([], margin=2) is None
    assert choose([c("aa", 10), c("bb", 30), c("cc", 20)], margin=2) == c("bb", 30)
    night = [c("bb", 0, 40), c("aa", 0, 80), c("cc", 0, 80)]
    assert choose(night, margin=2) == c("aa", 0, 80)  # more charge, then the lower MAC
    for order in (night, night[::-1], night[1:] + night[:1]):
        assert choose(order, margin=2) == c("aa", 0, 80)


def test_the_holder_keeps_the_name_until_beaten_by_the_margin() -> None:
    holder = c("bb", 20, claims=True)
    assert choose([holder, c("aa", 21.9)], margin=2) == holder
    assert choose([holder, c("aa", 22.1)], margin=2) == c("aa", 22.1)
    assert choose([holder, c("cc", 21), c("aa", 40, claims=True)], margin=2) == c("aa", 40, claims=True)


def test_a_v1_timestamp_is_read_in_the_zone_the_node_announced() -> None:
    now = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC).timestamp()
    assert age_of("2026-12-02 06:59:00.5", zone_of("America/New_York"), now) == pytest.approx(59.5)  # UTC-5
    assert age_of("not a time", None, now) is None
    assert zone_of("No/Such_Zone") is None


def test_a_peers_election_answer_must_hold_numbers() -> None:
    good = {"scaled_wattage": 10, "battery_charge": 50.5, "reading_age": 3.2, "point_of_entry": True}
    assert from_election_answer("aa", json.dumps(good).encode()) == Candidate("aa", 10, 50.5, 3.2, True)
    for bad in ({**good, "scaled_wattage": None}, {**good, "reading_age": "1"}, {**good, "battery_charge": True}):
        assert from_election_answer("aa", json.dumps(bad).encode()) is None
    assert from_election_answer("aa", b"NaN") is None


@contextlib.asynccontextmanager
async def two_nodes(tmp_path: Path, *, peer_election: bool) -> AsyncIterator[tuple[Election, LoopbackNode]]:
    """This node's election (not serving) and one peer (serving /api/election or only v1's routes)."""
    async with (
        serving(tmp_path, "peer", election=peer_election, mac="02:00:00:00:00:02") as peer,
        PeerClient(timeout=2, default_port=80, policy=TEST_POLICY) as client,
    ):
        me = tmp_path / "me"
        devices = DeviceList(me / "deviceList.json", policy=TEST_POLICY)
        devices.upsert(validate(entry("02:00:00:00:00:02", time.time(), "peer") | {"ip": peer.address}))
        election = election_for(me, devices, client, mac="02:00:00:00:00:01",
                                 dns_command=["/bin/sh", "-c", f'echo "$0" >> {tmp_path}/dns.log', "{ip}"])  # fmt: skip
        yield election, peer


def dns_runs(tmp_path: Path) -> list[str]:
    path = tmp_path / "dns.log"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("peer_election", [True, False], ids=["nutbridge-peer", "v1-peer"])
async def test_the_dns_command_runs_once_per_transition(tmp_path: Path, peer_election: bool) -> None:
    async with two_nodes(tmp_path, peer_election=peer_election) as (election, peer):
        write_reading(tmp_path / "me", watts=60, charge=0.5)  # scaled 30 W
        write_reading(peer.folder, watts=20, charge=0.9)  # scaled 10 W
        for _ in range(3):
            await election.round()
        assert election.point_of_entry
        assert dns_runs(tmp_path) == ["127.0.0.1"]
        assert len(PoeLog(tmp_path / "me" / "poe.log").newest()) == 1

        write_reading(peer.folder, watts=100, charge=0.9)  # scaled 50 W: beats us by more than the margin
        await election.round()
        assert not election.point_of_entry and election.holder is not None
        assert election.holder.mac == "02:00:00:00:00:02"
        write_reading(peer.folder, watts=0, charge=0.9)
        await election.round()
        assert election.point_of_entry
        assert dns_runs(tmp_path) == ["127.0.0.1", "127.0.0.1"]


async def test_a_stale_reading_never_counts(tmp_path: Path) -> None:
    async with two_nodes(tmp_path, peer_election=False) as (election, peer):
        old = dt.datetime.now() - dt.timedelta(minutes=5)
        write_reading(peer.folder, watts=100, charge=1.0, when=old)  # the sunniest, but its logger died
        write_reading(tmp_path / "me", watts=2, charge=0.1)
        election.freshness = 60
        await election.round()
        assert election.point_of_entry
        write_reading(tmp_path / "me", watts=2, charge=0.1, when=old)
        await election.round()
        assert election.holder is None and not election.point_of_entry  # nobody fresh: nobody claims


async def test_a_failing_dns_command_is_retried_and_a_hung_one_killed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with two_nodes(tmp_path, peer_election=False) as (election, _peer):
        write_reading(tmp_path / "me", watts=60, charge=0.5)
        marker = tmp_path / "fail-once"
        marker.touch()
        script = f'if rm {marker} 2>/dev/null; then exit 3; fi; echo "$0" >> {tmp_path}/dns.log'
        election.dns_command = ("/bin/sh", "-c", script, "{ip}")
        with caplog.at_level(logging.ERROR):
            await election.round()
            assert "failed (exit status 3)" in caplog.text
            await election.round()
            await election.round()
        assert dns_runs(tmp_path) == ["127.0.0.1"]  # retried once it failed, then not again
        assert election.dns_runs == 2

        election.dns_command, election.dns_timeout = ("sleep", "30"), 0.2
        assert await election.update_dns() is False
        assert "did not finish within 0.2 s; killed" in caplog.text


# --- the point-of-entry log ------------------------------------------------------------------------------


def test_the_poe_log_keeps_v1s_form_newest_first_and_stays_small(tmp_path: Path) -> None:
    path = tmp_path / "poe.log"
    poe = PoeLog(path)
    start = dt.datetime(2026, 12, 1, 12, 0, 0, 123456)
    for minute in range(3):
        poe.add(start + dt.timedelta(minutes=minute))
    assert path.read_text().splitlines()[0] == "INFO:root:2026-12-01 12:00:00.123456"
    assert poe.newest(2) == ["2026-12-01 12:02:00.123456", "2026-12-01 12:01:00.123456"]
    with path.open("a") as f:
        f.write("a line a person wrote\n")
    assert poe.newest()[0] == "2026-12-01 12:02:00.123456"


def test_a_long_poe_log_is_set_aside_whole_never_cut(tmp_path: Path) -> None:
    """A v1 node's poe.log is years of history: past its size it is kept under a dated name, every line."""
    path = tmp_path / "poe.log"
    start = dt.datetime(2026, 12, 1, 12, 0, 0, 123456)
    history = "".join(f"INFO:root:{start - dt.timedelta(minutes=5 * n)}\n" for n in range(30_000, 0, -1))
    path.write_text(history)  # v1's, some 1.1 MB
    poe = PoeLog(path)
    poe.add(start)
    aside = tmp_path / f"poe.log.{start.date()}"
    assert aside.read_text() == f"{history}INFO:root:{start}\n"
    assert path.stat().st_size <= 16 * 1024 and poe.newest(1) == [str(start)]
    assert len(poe.newest()) == 216  # announcements still carry as many lines
    path.write_text(history)
    poe.add(start + dt.timedelta(minutes=1))  # set aside again the same day: another name, nothing replaced
    assert aside.read_text().endswith(f"INFO:root:{start}\n")
    assert (tmp_path / f"poe.log.{start.date()}.2").read_text().startswith(history)
    assert path.stat().st_size <= MAX_FILE


def test_the_mac_is_the_first_real_interfaces(tmp_path: Path) -> None:
    for name, mac in (("lo", "00:00:00:00:00:00"), ("eth0", "B8:27:EB:12:34:56"), ("wlan0", "b8:27:eb:65:43:21")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "address").write_text(mac + "\n")
    assert interface_mac(None, tmp_path) == "b8:27:eb:12:34:56"
    assert interface_mac("wlan0", tmp_path) == "b8:27:eb:65:43:21"
    with pytest.raises(ConfigError, match=r"peers\.mac"):
        interface_mac("lo", tmp_path)


async def test_elections_wait_for_the_announcer_and_survive_a_failing_round(tmp_path: Path) -> None:
    async with two_nodes(tmp_path, peer_election=False) as (election, _peer):
        rounds: list[int] = []
        three = asyncio.Event()

        async def round_() -> None:
            rounds.append(1)
            if len(rounds) == 3:
                three.set()
            if len(rounds) == 1:
                raise RuntimeError("a bug in one round")

        election.round = round_  # type: ignore[method-assign]
        election.interval = 0.01
        election.ready = asyncio.Event()
        task = asyncio.create_task(election.run())
        await asyncio.sleep(0.05)
        assert rounds == []  # not before the announcer has heard the network
        election.ready.set()
        await asyncio.wait_for(three.wait(), 10)
        task.cancel()


async def test_the_election_route_answers_as_its_openapi_document_says(tmp_path: Path) -> None:
    from tests.helpers.schema import validate

    async with serving(tmp_path, "node", election=True, mac="02:00:00:00:00:05") as node:
        url = f"http://{node.address}"
        assert await validate(url, "/api/election") == 200
        assert node.election is not None
        write_reading(node.folder, watts=40, charge=0.7)
        await node.election.round()  # alone in its network: it wins
        assert await validate(url, "/api/election") == 200
        assert node.election.answer()["point_of_entry"] is True
