"""This node's part in the solar network, built from ``[peers]`` and ``[node]``: the announcer and the
election as tasks, sharing one HTTP client, the device list and the data log the API reads."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

from nutbridge.config import Config
from nutbridge.datalog.reader import DayCache
from nutbridge.errors import ConfigError
from nutbridge.node import Node, local_zone
from nutbridge.peers.addresses import split_address
from nutbridge.peers.announcer import Announcer
from nutbridge.peers.client import PeerClient, is_ip
from nutbridge.peers.devices import DeviceList
from nutbridge.peers.election import Election
from nutbridge.peers.identity import Identity, interface_mac, safe_name
from nutbridge.peers.poelog import PoeLog
from nutbridge.tasks import Background

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PeerNetwork:
    """The tasks a configuration enables (the election only with the announcer)."""

    client: PeerClient
    announcer: Announcer
    election: Election | None

    @classmethod
    def from_config(cls, config: Config, *, cache: DayCache, devices: DeviceList, node: Node) -> PeerNetwork:
        """Build what ``[peers] announce`` and ``election`` ask for (ConfigError when this node has no MAC)."""
        peers = config.peers
        # with_overrides: announcing needs the key and a listener, and a listener needs the data log
        assert peers.network_key is not None
        assert config.api.listen is not None
        assert config.datalog.folder is not None
        identity = Identity(
            mac=peers.mac or interface_mac(peers.interface),
            name=safe_name(str(node.info.get("name") or socket.gethostname())),
            tz=local_zone(),
            ip=peers.public_ip,
            port=config.api.listen[1],
            peer_port=peers.peer_port,
        )
        for seed in peers.peers:  # configured addresses follow the rule posted and gossiped ones do
            host, port = split_address(seed, peers.peer_port)
            if is_ip(host) and (reason := devices.policy.refusal(host, port)):
                raise ConfigError(f"peers.peers: {seed}: {reason}")
        client = PeerClient(timeout=peers.peer_timeout, default_port=peers.peer_port, policy=devices.policy)
        poe_log = PoeLog(peers.poe_log_path(config.datalog.folder))
        announcer = Announcer(
            identity=identity,
            devices=devices,
            client=client,
            network_key=peers.network_key,
            seeds=peers.peers,
            poe_log=poe_log,
            interval=peers.announce_interval,
            max_posts=peers.max_peers_per_round,
        )
        election = None
        if peers.election:
            election = Election(
                identity=identity,
                devices=devices,
                client=client,
                cache=cache,
                node=node,
                poe_log=poe_log,
                interval=peers.election_interval,
                freshness=peers.election_freshness,
                margin=peers.election_margin,
                dns_command=peers.dns_update_command,
                dns_timeout=peers.dns_update_timeout,
                max_watts=peers.election_max_watts,
                max_peers=peers.max_peers_per_round,
                ready=announcer.ready,
            )
        return cls(client, announcer, election)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the tasks while entered; they stop when it is left."""
        async with self.client, Background() as tasks:  # the tasks stop before the client closes
            jobs: list[Announcer | Election] = [self.announcer, *([self.election] if self.election else [])]
            for job in jobs:
                tasks.start(job.run(), name=f"nutbridge.peers.{job}")
                log.info("%s (this node %s)", job, self.announcer.identity.mac)
            yield
