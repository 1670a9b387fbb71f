"""Peers on loopback: a node serving the peer routes, its announcer, readings written for the election; a device
entry's form fields."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nutbridge.datalog.format import HEADER, csv_line, day_file
from nutbridge.datalog.reader import DayCache
from nutbridge.node import Node
from nutbridge.peers.announcer import Announcer
from nutbridge.peers.client import PeerClient
from nutbridge.peers.devices import DeviceList
from nutbridge.peers.election import Election
from nutbridge.peers.identity import Identity
from nutbridge.peers.poelog import PoeLog
from nutbridge.server.app import Sidecar, make_app
from tests.conftest import TEST_POLICY

KEY = "the network key of the test"
NOW = 1_780_000_000.0  # the stamp entry_fields gives


def entry_fields(mac: str = "b8:27:eb:00:00:01", **kw: str) -> dict[str, str]:
    """A device entry's form fields as a peer posts them, ``kw`` replacing any."""
    base = {"mac": mac, "ip": "192.0.2.10", "stamp": str(NOW), "name": "Solar Node", "tz": "America/New_York"}
    return base | {"log": "2026-12-01 10:00:00.1,2026-11-30 09:00:00.2"} | kw


def write_reading(folder: Path, *, watts: float, charge: float, when: dt.datetime | None = None) -> None:
    """Today's day file with one row, as the data log writes it (charge as v1's 0-1 fraction)."""
    when = when or dt.datetime.now()
    values = {"datetime": str(when), "PV power L": repr(watts), "PV power H": "0", "battery percentage": repr(charge)}
    folder.mkdir(parents=True, exist_ok=True)
    day_file(folder, dt.date.today()).write_text(
        csv_line(HEADER) + csv_line([values.get(column, "12.5") for column in HEADER])
    )


@dataclass
class LoopbackNode:
    folder: Path
    devices: DeviceList
    node: Node
    port: int = 0
    election: Election | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def identity(self, mac: str) -> Identity:
        return Identity(mac=mac, name=self.folder.name, tz="Etc/GMT+5", ip=self.address, port=self.port, peer_port=80)


def election_for(
    folder: Path, devices: DeviceList, client: PeerClient, *, mac: str, name: str = "me", ip: str | None = "127.0.0.1",
    node: Node | None = None, freshness: float = 60, dns_command: Sequence[str] = (),
) -> Election:  # fmt: skip
    """The election of the node whose files are in ``folder``: rounds of 1 s, a margin of 2 W, a 100 W array."""
    return Election(
        identity=Identity(mac=mac, name=name, tz="UTC", ip=ip, port=0, peer_port=80),
        devices=devices,
        client=client,
        cache=DayCache(folder),
        node=node or Node({"pvWatts": 100}),
        poe_log=PoeLog(folder / "poe.log"),
        interval=1,
        freshness=freshness,
        margin=2,
        dns_command=dns_command,
    )


@contextlib.asynccontextmanager
async def serving(tmp: Path, name: str, *, election: bool = False, mac: str = "") -> AsyncIterator[LoopbackNode]:
    """A node's sidecar on a loopback port; with ``election``, its /api/election answers too."""
    folder = tmp / name
    node = LoopbackNode(
        folder, DeviceList(folder / "deviceList.json", policy=TEST_POLICY), Node({"name": name, "pvWatts": 100})
    )
    write_reading(folder, watts=0.0, charge=0.5)
    election_obj = None
    if election:
        client = PeerClient(timeout=2, default_port=80, policy=TEST_POLICY)
        election_obj = election_for(folder, node.devices, client, mac=mac, name=name, ip=None, node=node.node)
    app = make_app(folder, devices=node.devices, network_key=KEY, node=node.node, election=election_obj)
    async with Sidecar(app, "127.0.0.1", 0) as sidecar:
        node.port = sidecar.port
        node.election = election_obj
        yield node


def announcer_for(node: LoopbackNode, mac: str, client: PeerClient, seeds: list[str]) -> Announcer:
    return Announcer(
        identity=node.identity(mac),
        devices=node.devices,
        client=client,
        network_key=KEY,
        seeds=seeds,
        poe_log=PoeLog(node.folder / "poe.log"),
        interval=60,
    )
