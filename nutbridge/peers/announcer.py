"""The announcer: every ``announce_interval`` this node POSTs who it is to every node it knows, and learns
the nodes they know from the device lists they answer with (v1's clientPostIP.py, as a task).

The form is v1's (``api_key, stamp, ip, mac, name, tz, log``), URL-encoded, so v1 nodes store it. The
node's own entry goes straight into its own list (v1 posts to localhost for that). Nodes learned from an
answer are announced to in the same round, each address once per round. Answers are read up to a cap and
every entry is validated before it is stored (the device list's address policy and caps, peers.devices);
one peer's failure, or its answer's refused entries, is logged when it starts and when it ends. A peer that
answered 429 is skipped, quietly, until its Retry-After has passed. At most ``max_posts`` posts go out in a
round: seeds first, then the nodes heard from most recently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence

from nutbridge.files import describe
from nutbridge.peers.client import PeerClient, PeerError, RateLimited
from nutbridge.peers.devices import MAX_DEVICES, DeviceList
from nutbridge.peers.entry import Device, DeviceError, validate
from nutbridge.peers.identity import Identity
from nutbridge.peers.poelog import PoeLog
from nutbridge.peers.schedule import every
from nutbridge.ratelimit import shown

log = logging.getLogger(__name__)

PATH = "/api/v1/api.php"
WRONG_KEY = b"Wrong API Key provided."
PARALLEL = 8  # posts in flight at once: a node on a solar budget does not flood its uplink
READY_AFTER = 2  # rounds after which this node has heard the network (the election waits for it)


class Announcer:
    """Announces ``identity`` to ``seeds`` and every device in ``devices``; ``ready`` is set after two rounds."""

    def __init__(
        self,
        *,
        identity: Identity,
        devices: DeviceList,
        client: PeerClient,
        network_key: str,
        seeds: Sequence[str],
        poe_log: PoeLog,
        interval: float,
        max_posts: int = 250,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.devices = devices
        self.client = client
        self.network_key = network_key
        self.seeds = tuple(seeds)
        self.poe_log = poe_log
        self.interval = interval
        self.max_posts = max_posts
        self.clock = clock
        self.rounds = 0
        self.ready = asyncio.Event()
        self._failing: dict[str, str] = {}
        self._refusing: set[str] = set()  # peers whose last answer held entries this node refuses
        self._parallel = asyncio.Semaphore(PARALLEL)

    def __str__(self) -> str:
        return f"announcer every {self.interval:g} s"

    async def run(self) -> None:
        """Announce every ``interval`` seconds until cancelled."""
        await every(self.interval, self.round, "announcement round", self._counted)

    def _counted(self) -> None:
        self.rounds += 1
        if self.rounds >= READY_AFTER:
            self.ready.set()

    async def round(self) -> None:
        """One announcement to every known node, and to every node their answers name."""
        own = {self.identity.mac.lower()}
        known = [d for d in await asyncio.to_thread(self.devices.current) if d.key not in own]
        known.sort(key=lambda d: -float(d.stamp))  # the freshest first, should the round's posts run out
        queue = list(dict.fromkeys([*self.seeds, *(d.ip for d in known)]))
        if not queue:
            return
        log_lines = await asyncio.to_thread(self.poe_log.newest)
        try:
            me = await asyncio.to_thread(self.me, queue[0], log_lines)
        except OSError as exc:
            log.warning("announcing: cannot find this node's address toward %s: %s", queue[0], describe(exc))
            return
        await asyncio.to_thread(lambda: self.devices.upsert(me, own=True))
        posted: set[str] = {me.ip}
        budget = min(self.max_posts, MAX_DEVICES)
        while queue and budget > 0:
            batch = [a for a in dict.fromkeys(queue) if a not in posted][:budget]
            budget -= len(batch)
            posted.update(batch)
            answers = await asyncio.gather(*(self.announce_to(a, me) for a in batch))
            learned = [d for answer in answers for d in answer]
            new = await asyncio.to_thread(self.devices.merge, learned, own_mac=me.mac)
            for device in new:
                log.info("learned of node %s (%s) from a peer", device.name, device.ip)
            queue = [d.ip for d in new]

    def me(self, toward: str, log_lines: list[str]) -> Device:
        """This node's entry, stamped now."""
        return validate(
            {
                "mac": self.identity.mac,
                "ip": self.identity.announced_ip(toward),
                "stamp": repr(round(self.clock(), 3)),
                "name": self.identity.name,
                "tz": self.identity.tz,
                "log": ",".join(log_lines),
            }
        )

    async def announce_to(self, address: str, me: Device) -> list[Device]:
        """POST ``me`` to one node; the valid entries of the device list it answers with."""
        form = {"api_key": self.network_key, "stamp": me.stamp, "ip": me.ip, "mac": me.mac, "name": me.name,
                "tz": me.tz, "log": ",".join(me.log)}  # fmt: skip
        if wait := self.client.rate_limited(address):
            log.debug("announcing: skipping %s for another %s: it answered HTTP 429", address, shown(wait))
            return []
        async with self._parallel:
            try:
                status, body = await self.client.post_form(address, PATH, form)
            except RateLimited as exc:  # held since the round began (the election asked it meanwhile)
                log.debug("announcing: %s", exc)
                return []
            except PeerError as exc:  # the same failure again, though its text may differ (a byte count, say)
                self._failed(address, str(exc), kind=type(exc.__cause__).__name__ if exc.__cause__ else None)
                return []
        if status == 429:
            wait = self.client.rate_limited(address)
            reason = f"{address} answered HTTP 429 Too Many Requests: not asked again for {shown(wait)}"
            self._failed(address, reason, kind="429")
            return []
        if status != 200:
            self._failed(address, f"{address} answered HTTP {status}")
            return []
        if body.strip() == WRONG_KEY:
            self._failed(address, f"{address} refused this node's network key")
            return []
        self._worked(address)
        devices, refused = read_device_list(body)
        allowed = []
        for device in devices:
            why = self.devices.refusal(device)
            if why:
                refused.append(f"{device.ip}: {why}")
            else:
                allowed.append(device)
        if refused and address not in self._refusing:
            log.warning("announcing to %s: its list holds %d entries this node refuses, e.g. %s",
                        address, len(refused), refused[0][:200])  # fmt: skip
            self._refusing.add(address)
        elif not refused and address in self._refusing:
            log.info("announcing to %s: its list holds no refused entries again", address)
            self._refusing.discard(address)
        return allowed

    def _failed(self, address: str, reason: str, kind: str | None = None) -> None:
        """Log ``reason`` when ``address`` starts failing, or fails another way (``kind``: what counts as the
        same way, when the reason's text changes each time)."""
        if self._failing.get(address) != (kind or reason):
            log.warning("announcing to %s: %s", address, reason)
        self._failing[address] = kind or reason

    def _worked(self, address: str) -> None:
        if self._failing.pop(address, None) is not None:
            log.info("announcing to %s works again", address)


def parse_device_list(body: bytes) -> list[Device]:
    """The valid entries of a v1 device-list answer (an empty body, v1's answer to a first post, is none)."""
    return read_device_list(body)[0]


def read_device_list(body: bytes) -> tuple[list[Device], list[str]]:
    """The valid entries of a v1 device-list answer, and why each other entry was refused."""
    try:
        data = json.loads(body) if body.strip() else []
    except (ValueError, RecursionError):
        return [], ["the answer is not JSON"]
    if not isinstance(data, list):
        return [], ["the answer is not a JSON list"]
    devices, refused = [], []
    for entry in data[:MAX_DEVICES]:
        if not isinstance(entry, dict):
            refused.append("an entry that is not an object")
            continue
        fields = {k: entry.get(k, "") for k in ("mac", "ip", "name", "tz", "log")}
        try:
            devices.append(validate({**fields, "stamp": str(entry.get("time stamp", ""))}))
        except DeviceError as exc:
            refused.append(str(exc))
    return devices, refused
