"""The device list: every node of the solar network this node has heard of, keyed by MAC address.

The file keeps Solar Protocol's deviceList.json shape (a JSON array of objects with ``mac``, ``ip``,
``time stamp``, ``name``, ``tz``, ``log``), so the v1 tools that read it still can. Unlike v1's api.php it
validates every field (peers.entry), writes under a lock by atomic replace (a reader never sees half a file, two
posts never lose one another), never resets the list on a bad read, and drops entries not heard from for
``expiry_days``.

Every node announces itself every few minutes, and most announcements change nothing but the entry's stamp.
With ``flush_interval`` such stamps are held in memory (the daemon's readers see them at once) and written
together when the window ends (``written_when_due``) or with the next real change: one rewrite of the file per
window instead of one per announcement, for the SD card's sake. A crash loses at most the window's stamps,
which only age an entry toward its expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

from nutbridge.files import describe, read_capped, replace_atomically
from nutbridge.peers.addresses import AddressPolicy, split_address
from nutbridge.peers.budget import ChangeBudget
from nutbridge.peers.entry import Device, DeviceError, DeviceRefused, stored_size, validate
from nutbridge.tasks import Background

log = logging.getLogger(__name__)

# Caps in bytes as stored, as an entry's (peers.entry.MAX_ENTRY); the list's is the answer a peer reads
# (peers.client).
MAX_LIST = 1024 * 1024
MAX_FILE = 4 * 1024 * 1024  # read back at most (a v1 node's file may be larger than we write)
MAX_DEVICES = 1000
CHECK_EVERY = 10.0  # seconds between looks at held stamps; bounds how far past its window one may wait
RETRY_AFTER = 30.0  # seconds before a failed write of held stamps is tried again


class DeviceListError(DeviceError):
    """The list cannot be read or written: this node's trouble, not the sender's."""


class TooManyChanges(DeviceRefused):
    """The sender has used its changes for the hour; ``wait``: seconds until its next."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


class DeviceList:
    """The list in ``path``; every method may block (callers in the event loop use a thread).

    Every entry it stores, posted or learned, passes ``policy`` (peers.addresses) and the caps: an entry of at
    most MAX_ENTRY bytes, a list of at most MAX_DEVICES entries and MAX_LIST bytes. An update that would break
    one is refused alone (DeviceRefused); the list stays as it was, readable, and takes the next honest one.
    """

    def __init__(
        self,
        path: Path,
        *,
        policy: AddressPolicy | None = None,
        budget: ChangeBudget | None = None,
        expiry_days: float = 30,
        flush_interval: float = 0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.policy = policy or AddressPolicy()
        self.budget = budget
        self.expiry = expiry_days * 86400
        self.flush_interval = flush_interval
        self.clock = clock
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._stamps: dict[str, str] = {}  # mac -> the newest stamp, not yet written
        self._held_since = 0.0  # monotonic time the oldest held stamp came in

    def __str__(self) -> str:
        return f"device list {self.path}"

    def refusal(self, device: Device) -> str | None:
        """Why the policy refuses ``device``'s address, or None."""
        host, port = split_address(device.ip, self.policy.peer_port)
        return self.policy.refusal(host, port)

    def read(self) -> list[Device]:
        """The stored devices with their held stamps; unreadable or invalid entries are skipped, never the
        whole list."""
        stamps = self._stamps  # one dict: a writer replaces it, never empties it under a reader
        return [dataclasses.replace(d, stamp=s) if (s := stamps.get(d.key)) else d for d in self._stored()]

    def _stored(self) -> list[Device]:
        # Errors name the file, never its folder: their text reaches peers' answers.
        try:
            raw = read_capped(self.path, MAX_FILE)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise DeviceListError(f"cannot read the device list {self.path.name}: {describe(exc)}") from exc
        try:
            data = json.loads(raw) if raw is not None else None
        except ValueError:
            data = None
        if not isinstance(data, list):
            raise DeviceListError(
                f"the device list {self.path.name} is not a JSON list of devices; it is left as it is"
            )
        devices = []
        for entry in data:
            try:
                device = validate({**entry, "stamp": entry.get("time stamp", "")})
            except (DeviceError, AttributeError, TypeError):
                continue
            if self.refusal(device) is None:  # stored before the policy, or under another
                devices.append(device)
        return devices

    def current(self) -> list[Device]:
        """The stored devices heard from within ``expiry_days``."""
        oldest = self.clock() - self.expiry
        return [d for d in self.read() if float(d.stamp) >= oldest]

    def merge(self, learned: list[Device], *, own_mac: str) -> list[Device]:
        """Add peers another node told us about; an entry we hold is replaced only by a newer one.

        Returns the devices that were new to this list. ``own_mac`` is never taken from another node's word,
        stamps in the future (another node's clock, or a lie) count as now, and entries the policy or a cap
        refuses are skipped (the caller says so).
        """
        with self._lock:
            now = self.clock()
            oldest = now - self.expiry
            stored = self.read()
            known = {d.key: d for d in stored if float(d.stamp) >= oldest}
            size = list_size(known.values())
            new: list[Device] = []
            restamped: list[Device] = []
            changed = len(known) < len(stored)  # beyond the stamps of entries we hold: expired ones go
            for device in learned:
                device = clamped(device, now)  # noqa: PLW2901
                held = known.get(device.key)
                if device.key == own_mac.lower() or float(device.stamp) < oldest or self.refusal(device):
                    continue
                if held is not None and float(held.stamp) >= float(device.stamp):
                    continue
                grown = size + stored_size(device) + (1 if held is None else -stored_size(held))
                if grown > MAX_LIST and (held is None or grown > size):
                    continue
                if held is None:
                    if len(known) >= MAX_DEVICES:
                        continue
                    new.append(device)
                    changed = True
                elif only_restamped(held, device):
                    restamped.append(device)
                else:
                    changed = True
                known[device.key], size = device, grown
            if changed or (restamped and not self.flush_interval):
                self._write(list(known.values()))
            elif restamped:
                self._hold(restamped)
            return new

    def upsert(self, device: Device, *, own: bool = False, sender: str | None = None) -> tuple[list[Device], bool]:
        """Store ``device`` (replacing the entry with its MAC) and drop expired ones; ``own``: this node's entry,
        whose address is ours to choose, not the policy's; ``sender``: the address that posted it, whose
        changes beyond a stamp count against the ``budget``.

        Returns the new list and whether the file already held a list (v1 answers only then). DeviceRefused
        when the policy or a cap refuses it; the list is then unchanged.
        """
        if not own and (reason := self.refusal(device)):
            raise DeviceRefused(f"ip: {reason}")
        with self._lock:
            device = clamped(device, self.clock())
            existed = self.path.exists()
            oldest = self.clock() - self.expiry
            before = self.read()
            updated, placed, changed = [], False, False
            for known in before:
                if known.key == device.key:  # keep its place, as v1 does
                    updated.append(device)
                    placed, changed = True, changed or not only_restamped(known, device)
                elif float(known.stamp) >= oldest:
                    updated.append(known)
                else:
                    changed = True  # an expired entry goes
            if not placed:
                if len(updated) >= MAX_DEVICES:
                    raise DeviceRefused(f"list: it holds {MAX_DEVICES} devices already")
                updated.append(device)
                changed = True
            if (size := list_size(updated)) > MAX_LIST and size > list_size(before):
                raise DeviceRefused(f"list: it would take {size} bytes, over its cap of {MAX_LIST}")
            if changed and sender is not None and self.budget and (wait := self.budget.take(sender)):
                raise TooManyChanges(
                    f"rate: {self.budget.per_hour} changes to the list within an hour; the next in {wait:.0f} s", wait
                )
            if changed or not self.flush_interval:
                self._write(updated)
            else:
                self._hold([device])
            return updated, existed

    def due(self) -> float | None:
        """Seconds until the held stamps are due to be written (None: none held)."""
        return self._held_since + self.flush_interval - self.monotonic() if self._stamps else None

    def flush(self) -> None:
        """Write the held stamps now; DeviceError if the file cannot be written (they stay held)."""
        with self._lock:
            if self._stamps:
                oldest = self.clock() - self.expiry
                self._write([d for d in self.read() if float(d.stamp) >= oldest])

    def text(self) -> str:
        """The file as v1 echoes it, with the held stamps in it ("" when there is no list, or one over the cap
        this node reads)."""
        try:
            if self._stamps:
                return encode(self.read()).decode()
            raw = read_capped(self.path, MAX_FILE)
            return "" if raw is None else raw.decode()
        except (OSError, DeviceError, UnicodeDecodeError):
            return ""

    def _hold(self, devices: list[Device]) -> None:
        if not self._stamps:
            self._held_since = self.monotonic()
        self._stamps = {**self._stamps, **{d.key: d.stamp for d in devices}}

    def _write(self, devices: list[Device]) -> None:
        try:
            replace_atomically(self.path, encode(devices))
        except OSError as exc:
            raise DeviceListError(
                f"cannot write the device list {self.path.name}: {describe(exc)}; the list is unchanged"
            ) from exc
        self._stamps = {}  # written: the file has them now


def clamped(device: Device, now: float) -> Device:
    """``device`` with a stamp from the future (another node's clock, or a lie) counted as now."""
    return dataclasses.replace(device, stamp=repr(now)) if float(device.stamp) > now else device


def list_size(devices: Iterable[Device]) -> int:
    """The bytes ``encode`` makes of ``devices``."""
    sizes = [stored_size(d) for d in devices]
    return 2 + sum(sizes) + max(len(sizes) - 1, 0)


def only_restamped(before: Device, after: Device) -> bool:
    """Whether ``after`` differs from ``before`` in its stamp alone (a node announcing itself again)."""
    return dataclasses.replace(before, stamp=after.stamp) == after


def encode(devices: list[Device]) -> bytes:
    """The file's bytes: v1's JSON array, compact."""
    return json.dumps([d.as_json() for d in devices], separators=(",", ":")).encode()


@contextlib.asynccontextmanager
async def written_when_due(devices: DeviceList | None) -> AsyncIterator[None]:
    """While entered, write ``devices``' held stamps when their window ends; when left, whatever is held."""
    try:
        async with Background() as tasks:
            if devices:
                tasks.start(_write_when_due(devices), name="nutbridge.device-list")
            yield
    finally:
        if devices:
            try:
                devices.flush()  # a clean stop loses no stamp; blocking, once
            except DeviceError as exc:
                log.error("%s; its newest stamps are lost", exc)


async def _write_when_due(devices: DeviceList) -> None:
    error = None
    while True:
        due = devices.due()
        if due is None or due > 0:
            await asyncio.sleep(CHECK_EVERY if due is None else min(due, CHECK_EVERY))
            continue
        try:
            await asyncio.to_thread(devices.flush)
        except DeviceError as exc:
            if str(exc) != error:  # once per change, not every retry
                log.error("%s; the newer stamps stay in memory and are tried again", exc)
                error = str(exc)
            await asyncio.sleep(RETRY_AFTER)
            continue
        if error is not None:
            log.warning("%s is written again", devices)
            error = None
