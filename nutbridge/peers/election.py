"""Point-of-entry election: which node of the network has the most sun, and so serves the network's name.

Every ``election_interval`` this node compares its PV power, scaled to a 50 W panel, with every peer's
(v1's solarProtocol.py, as a task). Unlike v1:

- a reading older than ``freshness`` seconds does not count, on either side (v1 trusted a dead logger's
  last row until midnight);
- ties break the same way on every node (more battery charge, then the lower MAC), so exactly one node
  wins, at night too, where every v1 node claimed the name every cycle;
- the node that holds the name keeps it until another beats it by ``margin`` scaled watts, so two nodes
  under the same sky do not swap the DNS record every round; who holds it is what each nutbridge node says
  at ``GET /api/election``, so every node starts from the same incumbent;
- the DNS update command runs once per transition (again next round only if it failed), with a timeout,
  and each transition is added to the PoE log that announcements carry.

A nutbridge peer answers ``/api/election`` with its scaled power, charge, reading age and claim in one
request; any other node is asked v1's ``value=scaled-wattage``, ``value=datetime`` (read in the time zone
it announced) and ``value=battery-percentage``.

Whatever a peer answers is data: an answer that cannot be read, or numbers no node can report (scaled watts
outside 0 to ``max_watts``, a charge outside 0-100 %, a negative reading age), leaves that peer out of the
round, with one log line when its reason changes; no answer stops a round. At most ``max_peers`` peers
(the most recently heard from) are asked per round.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import time
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from nutbridge.datalog.format import Column
from nutbridge.datalog.reader import DayCache
from nutbridge.node import Node
from nutbridge.peers.addresses import split_address
from nutbridge.peers.client import PeerClient, PeerError
from nutbridge.peers.devices import DeviceList
from nutbridge.peers.entry import Device
from nutbridge.peers.identity import Identity
from nutbridge.peers.poelog import PoeLog
from nutbridge.peers.schedule import every

log = logging.getLogger(__name__)

V1_PATH = "/api/v1/chargecontroller.php"
PATH = "/api/election"
OUTPUT_CAP = 400  # characters of a failing DNS command's output that reach the log
CLOCK_SKEW = 60.0  # seconds a v1 peer's datetime may be ahead of our clock and still count as just now


@dataclass(frozen=True, slots=True)
class Candidate:
    """One node's standing: scaled watts, battery charge (0-100 %), the age of the reading, its claim."""

    mac: str
    watts: float
    charge: float
    age: float
    claims: bool = False


def rank(candidate: Candidate) -> tuple[float, float, str]:
    """Sort key, best first: more scaled watts, then more charge, then the lower MAC."""
    return (-candidate.watts, -candidate.charge, candidate.mac)


def choose(candidates: Sequence[Candidate], margin: float) -> Candidate | None:
    """The winner: the best node, unless a node already holding the name is within ``margin`` watts of it."""
    if not candidates:
        return None
    ranked = sorted(candidates, key=rank)
    best = ranked[0]
    holder = next((c for c in ranked if c.claims), None)
    if holder is not None and best.watts <= holder.watts + margin:
        return holder
    return best


def finite_float(text: str | None) -> float | None:
    """A finite float from a body or a cell, or None."""
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def age_of(naive: str | None, zone: dt.tzinfo | None, now: float) -> float | None:
    """Seconds since a v1 timestamp (naive local time in ``zone``; None = this machine's zone); None when it
    is no time (year 1 in a zone east of UTC is before year 1: OverflowError or ValueError, by platform)."""
    try:
        when = dt.datetime.fromisoformat((naive or "").strip()[:64])
        stamp = when.replace(tzinfo=zone).timestamp() if zone else when.astimezone().timestamp()
    except (ValueError, OverflowError, OSError):
        return None
    return now - stamp


def implausible(candidate: Candidate, max_watts: float) -> tuple[str, str] | None:
    """Why a peer's standing is no node's: (what, in words), or None. It leaves the peer out of the round."""
    if not 0 <= candidate.watts <= max_watts:
        return "watts", f"{candidate.watts:g} scaled watts, where a node reports 0-{max_watts:g}"
    if not 0 <= candidate.charge <= 100:
        return "charge", f"a battery charge of {candidate.charge:g} %"
    if candidate.age < 0:
        return "age", f"a reading {-candidate.age:g} s in the future"
    return None


def zone_of(name: str) -> dt.tzinfo | None:
    """The zone a peer announced, or None (this machine's) when it named none or an unknown one."""
    try:
        return zoneinfo.ZoneInfo(name) if name else None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


class Election:
    """Elects every ``interval`` seconds once ``ready`` is set (the announcer has heard the network)."""

    def __init__(
        self,
        *,
        identity: Identity,
        devices: DeviceList,
        client: PeerClient,
        cache: DayCache,
        node: Node,
        poe_log: PoeLog,
        interval: float,
        freshness: float,
        margin: float,
        dns_command: Sequence[str] = (),
        dns_timeout: float = 30.0,
        max_watts: float = 1000.0,
        max_peers: int = 250,
        ready: asyncio.Event | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.devices = devices
        self.client = client
        self.cache = cache
        self.node = node
        self.poe_log = poe_log
        self.interval = interval
        self.freshness = freshness
        self.margin = margin
        self.dns_command = tuple(dns_command)
        self.dns_timeout = dns_timeout
        self.max_watts = max_watts
        self.max_peers = max_peers
        self.ready = ready
        self.clock = clock
        self.rounds = 0
        self.holder: Candidate | None = None  # the winner of the last round
        self.since: float | None = None  # when this node last became point of entry
        self.elected_round: int | None = None  # and in which round
        self.dns_runs = 0
        self._dns_due = False
        self._peer_ips: list[str] = []  # the last round's peers, to find this node's address toward them
        self._left_out: dict[str, str] = {}  # mac -> the kind of reason that peer did not count, as logged

    @property
    def point_of_entry(self) -> bool:
        """Whether this node won the last round."""
        return self.holder is not None and self.holder.mac == self.identity.mac

    def __str__(self) -> str:
        return f"point-of-entry election every {self.interval:g} s"

    async def run(self) -> None:
        """Elect every ``interval`` seconds until cancelled."""
        if self.ready is not None:
            await self.ready.wait()
        await every(self.interval, self.round, "election round", lambda: None)

    async def round(self) -> None:
        """Ask every known peer, choose, and act on a change."""
        known = [d for d in await asyncio.to_thread(self.devices.current) if d.key != self.identity.mac.lower()]
        peers = sorted(known, key=lambda d: -float(d.stamp))[: self.max_peers]  # the freshest, if too many
        self._peer_ips = [d.ip for d in peers]
        answers = await asyncio.gather(*(self.remote(d) for d in peers), return_exceptions=True)
        standings = [self.judged(d, a) for d, a in zip(peers, answers, strict=True)]
        candidates = [c for c in (self.local(), *standings) if c is not None and c.age <= self.freshness]
        winner = choose(candidates, self.margin)
        was = self.point_of_entry
        changed = (winner and winner.mac) != (self.holder and self.holder.mac)
        self.holder = winner
        self.rounds += 1
        if changed:
            names = {d.key: d.name for d in peers} | {self.identity.mac: f"this node ({self.identity.name})"}
            who = "nobody (no fresh reading)" if winner is None else names.get(winner.mac, winner.mac)
            log.info("point of entry: %s (%d fresh of %d nodes)", who, len(candidates), len(peers) + 1)
        if self.point_of_entry and not was:
            now = self.clock()
            self.since, self.elected_round = now, self.rounds
            self._dns_due = bool(self.dns_command)
            assert winner is not None
            log.info("this node is now the point of entry (%.2f W scaled, %.0f %% charge)", winner.watts, winner.charge)
            await asyncio.to_thread(self.poe_log.add, dt.datetime.fromtimestamp(now))
        elif was and not self.point_of_entry:
            self._dns_due = False
            log.info("this node is no longer the point of entry")
        if self.point_of_entry and self._dns_due:
            self._dns_due = not await self.update_dns()

    def local(self) -> Candidate | None:
        """This node's standing, from its own data log: what its peers read from it too."""
        now = self.clock()
        watts = finite_float(self.cache.newest(Column.PV_POWER_L))
        age = age_of(self.cache.newest(Column.DATETIME), None, now)
        if watts is None or age is None:
            return None
        charge = finite_float(self.cache.newest(Column.BATTERY_PERCENTAGE)) or 0.0
        scaled = watts * (self.node.wattage_scaler() or 0)
        return Candidate(self.identity.mac, round(scaled, 3), round(charge * 100, 1), age, self.point_of_entry)

    def judged(self, device: Device, answer: Candidate | BaseException | None) -> Candidate | None:
        """``answer`` if it counts; else None, with a log line when this peer's kind of reason changes (a text
        that differs each round, a wait or a number, is the same reason)."""
        why: tuple[str, str] | None = None
        if isinstance(answer, PeerError):
            cause = answer.__cause__
            why = f"{type(answer).__name__}.{type(cause).__name__ if cause else ''}", f"no answer: {answer}"
        elif isinstance(answer, BaseException):  # a bug of ours on a peer's data: that peer, not the round
            why = type(answer).__name__, f"an answer that could not be read ({type(answer).__name__}: {answer})"
        elif answer is None:
            why = "unread", "no reading in its answer"
        else:
            why = implausible(answer, self.max_watts)
        before = self._left_out.get(device.key)
        if why is None:
            if before is not None:
                del self._left_out[device.key]
                log.info("election: node %s (%s) counts again", device.name, device.ip)
            return answer if isinstance(answer, Candidate) else None
        if why[0] != before:
            log.warning("election: node %s (%s) left out: %s", device.name, device.ip, why[1][:OUTPUT_CAP])
            self._left_out[device.key] = why[0]
        return None

    async def remote(self, device: Device) -> Candidate | None:
        """A peer's standing; None when its answer holds none; PeerError when it cannot be had."""
        status, body = await self.client.get(device.ip, PATH, {})
        if status == 200:
            return from_election_answer(device.key, body)
        if status != 404:
            raise PeerError(f"{device.ip} answered HTTP {status}")
        values = await asyncio.gather(
            *(self.client.get(device.ip, V1_PATH, {"value": v}) for v in V1_VALUES), return_exceptions=True
        )
        bodies = [v[1].decode(errors="replace") if isinstance(v, tuple) and v[0] == 200 else None for v in values]
        watts, charge = finite_float(bodies[0]), finite_float(bodies[2])
        age = age_of(bodies[1], zone_of(device.tz), self.clock())
        if watts is None or age is None:
            return None
        if -CLOCK_SKEW <= age < 0:  # v1's datetime is read on the peer's clock, ours may be a little behind
            age = 0.0
        return Candidate(device.key, watts, (charge or 0.0) * 100, age)

    async def update_dns(self) -> bool:
        """Run the DNS update command with ``{ip}`` as this node's address; True when it exits 0."""
        toward = self._peer_ips[0] if self._peer_ips else "127.0.0.1"
        try:
            ip = split_address(self.identity.announced_ip(toward), self.identity.peer_port)[0]
        except OSError as exc:
            log.error("DNS update: cannot find this node's address toward %s: %s", toward, exc.strerror)
            return False
        argv = [part.replace("{ip}", ip) for part in self.dns_command]
        self.dns_runs += 1
        try:
            pipe = asyncio.subprocess
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=pipe.DEVNULL, stdout=pipe.PIPE, stderr=pipe.STDOUT
            )
        except OSError as exc:
            log.error("DNS update command %s cannot run: %s", argv[0], exc.strerror)
            return False
        try:
            output, _ = await asyncio.wait_for(process.communicate(), self.dns_timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            log.error("DNS update command %s did not finish within %g s; killed", argv[0], self.dns_timeout)
            return False
        if process.returncode != 0:
            tail = output.decode(errors="replace").strip()[-OUTPUT_CAP:]
            log.error("DNS update command %s failed (exit status %s): %s", argv[0], process.returncode, tail)
            return False
        log.info("DNS update command ran: this node's address %s is the network's point of entry", ip)
        return True

    def answer(self) -> dict[str, Any]:
        """What ``GET /api/election`` tells peers and people."""
        me = self.local()
        return {
            "mac": self.identity.mac,
            "point_of_entry": self.point_of_entry,
            "since": self.since if self.point_of_entry else None,
            "elected_round": self.elected_round if self.point_of_entry else None,
            "holder": None if self.holder is None else self.holder.mac,
            "scaled_wattage": None if me is None else me.watts,
            "battery_charge": None if me is None else me.charge,
            "reading_age": None if me is None else round(me.age, 3),
            "rounds": self.rounds,
        }

    async def handle(self, request: web.Request) -> web.Response:
        """``GET /api/election``."""
        return web.json_response(self.answer())


V1_VALUES = ("scaled-wattage", "datetime", "battery-percentage")


def from_election_answer(mac: str, body: bytes) -> Candidate | None:
    """A Candidate from a nutbridge peer's ``/api/election`` answer (its MAC is the one we hold)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    values = [data.get(k) for k in ("scaled_wattage", "battery_charge", "reading_age")]
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != len(values) or not all(math.isfinite(v) for v in numbers):
        return None
    watts, charge, age = numbers
    return Candidate(mac, watts, charge, age, data.get("point_of_entry") is True)
