"""The announcer and the peer client against a node (a real nutbridge sidecar on loopback) that answers 401,
429 with Retry-After, 500, trickles its body, or resets the connection, before or inside the body.

A wrong network key and a closed port are in test_peers.py; an answer over the cap too. Peers speak plain
HTTP, as v1 does, so there is no TLS to fail."""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nutbridge.node import Node
from nutbridge.peers.announcer import PATH
from nutbridge.peers.client import PeerClient, RateLimited
from nutbridge.peers.devices import DeviceList
from nutbridge.server.app import Sidecar, make_app
from tests.conftest import TEST_POLICY
from tests.faults.servers import HttpFaults
from tests.helpers.peers import KEY, LoopbackNode, announcer_for, serving, write_reading
from tests.helpers.powerwall import Clock

ME = "02:00:00:00:00:01"
TIMEOUT = 0.3


@contextlib.asynccontextmanager
async def faulty_node(tmp: Path, name: str, faults: HttpFaults) -> AsyncIterator[LoopbackNode]:
    """A node as tests.peers.test_peers.serving makes one, its application behind ``faults``."""
    folder = tmp / name
    node = LoopbackNode(
        folder, DeviceList(folder / "deviceList.json", policy=TEST_POLICY), Node({"name": name, "pvWatts": 100})
    )
    write_reading(folder, watts=0.0, charge=0.5)
    app = faults.install(make_app(folder, devices=node.devices, network_key=KEY, node=node.node))
    async with Sidecar(app, "127.0.0.1", 0) as sidecar:
        node.port = sidecar.port
        yield node


def this_node(tmp: Path) -> LoopbackNode:
    folder = tmp / "me"
    write_reading(folder, watts=1, charge=0.5)
    return LoopbackNode(
        folder, DeviceList(folder / "deviceList.json", policy=TEST_POLICY), Node({}), port=1024
    )  # nothing listens: this node only announces


def ours(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("nutbridge") and r.levelno == level]


ERRORS = {
    "401": r"answered HTTP 401$",
    "500": r"answered HTTP 500$",
    "slow": rf"no answer within {TIMEOUT:g} s$",
    "reset": r"ClientOSError: \[Errno 104\] Connection reset by peer$",
    "reset-body": r"ClientPayloadError: Response payload is not completed",
}


@pytest.mark.parametrize("fault", ERRORS)
async def test_a_failing_peer_is_logged_once_the_round_goes_on_and_it_works_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    caplog.set_level(logging.DEBUG)
    faults = HttpFaults(affects=lambda path: path == PATH)
    async with (
        faulty_node(tmp_path, "flaky", faults) as flaky,
        serving(tmp_path, "steady") as steady,
        PeerClient(timeout=TIMEOUT, default_port=80, policy=TEST_POLICY) as client,
    ):
        announcer = announcer_for(this_node(tmp_path), ME, client, [flaky.address, steady.address])
        rounds = itertools.count()
        announcer.clock = lambda: time.time() + next(rounds)  # a stamp of its own for each round
        await announcer.round()
        faults.fault = fault
        stamps = []
        for _ in range(3):
            await announcer.round()
            stamps.append({d.mac: d.stamp for d in steady.devices.current()}[ME])
        assert len(set(stamps)) == 3, "the steady peer missed an announcement"
        faults.fault = None
        await announcer.round()
        assert ME in {d.mac for d in flaky.devices.current()}
    assert faults.hits == 3
    failing = [m for m in ours(caplog, logging.WARNING) if m.startswith(f"announcing to {flaky.address}: ")]
    assert len(failing) == 1 and re.search(ERRORS[fault], failing[0]), failing
    assert ours(caplog, logging.INFO).count(f"announcing to {flaky.address} works again") == 1
    assert not [r for r in caplog.records if KEY in r.getMessage()]


async def test_a_peer_answering_429_is_skipped_until_its_retry_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    faults = HttpFaults()
    faults.fault, faults.retry_after = "429", "120"
    async with (
        faulty_node(tmp_path, "busy", faults) as busy,
        PeerClient(timeout=TIMEOUT, default_port=80, clock=clock, policy=TEST_POLICY) as client,
    ):
        announcer = announcer_for(this_node(tmp_path), ME, client, [busy.address])
        await announcer.round()
        assert faults.hits == 1 and client.rate_limited(busy.address) == 120
        clock.now += 60
        for _ in range(2):
            await announcer.round()  # skipped, without a request
        with pytest.raises(RateLimited, match=r"rate-limited for 60 s more after HTTP 429; not asked until then"):
            await client.get(busy.address, "/api/election", {})  # the election's requests wait too
        assert faults.hits == 1
        clock.now += 61
        await announcer.round()  # asked again, and a 429 again: the same failure, not logged again
        assert faults.hits == 2
        clock.now += 121
        faults.fault = None
        await announcer.round()
        assert ME in {d.mac for d in busy.devices.current()}
    warnings = ours(caplog, logging.WARNING)
    assert warnings == [
        f"announcing to {busy.address}: {busy.address} answered HTTP 429 Too Many Requests: not asked again for 120 s"
    ]
    assert ours(caplog, logging.INFO).count(f"announcing to {busy.address} works again") == 1
