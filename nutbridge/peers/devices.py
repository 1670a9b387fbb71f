"""The device list: every node of the solar network this node has heard of, keyed by MAC address.

The file keeps Solar Protocol's deviceList.json shape (a JSON array of objects with ``mac``, ``ip``,
``time stamp``, ``name``, ``tz``, ``log``), so the v1 tools that read it still can. Unlike v1's api.php it
validates every field, writes under a lock by atomic replace (a reader never sees half a file, two posts
never lose one another), never resets the list on a bad read, and drops entries not heard from for
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
import ipaddress
import json
import logging
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nutbridge.errors import NutbridgeError
from nutbridge.files import describe, replace_atomically

log = logging.getLogger(__name__)

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
NAME = re.compile(r"^[\w .,()-]{1,64}$")  # any script's letters, digits, a little punctuation; nothing HTML-special
TZ = re.compile(r"^[A-Za-z0-9_+\-]{1,32}(/[A-Za-z0-9_+\-]{1,32}){0,2}$")
LOG_ENTRY = re.compile(r"^[\w :.+\-]{0,40}$")
MAX_LOG = 256
MAX_FILE = 4 * 1024 * 1024
MAX_DEVICES = 1000
CHECK_EVERY = 10.0  # seconds between looks at held stamps; bounds how far past its window one may wait
RETRY_AFTER = 30.0  # seconds before a failed write of held stamps is tried again


class DeviceError(NutbridgeError):
    """A device entry is invalid, or the list cannot be read or written."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    """One node, validated."""

    mac: str
    ip: str
    stamp: str  # epoch seconds, as the node sent it
    name: str
    tz: str
    log: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """The v1 object, keys in v1's order."""
        return {"mac": self.mac, "ip": self.ip, "time stamp": self.stamp, "name": self.name, "tz": self.tz,
                "log": list(self.log)}  # fmt: skip


def validate(fields: Mapping[str, str]) -> Device:
    """A Device from a peer's form fields (or a stored entry); DeviceError names the first bad field."""

    def field(name: str, limit: int = 256) -> str:
        value = fields.get(name, "")
        if not isinstance(value, str) or len(value) > limit:
            raise DeviceError(f"{name}: not a string of at most {limit} characters")
        return value.strip()

    mac = field("mac").lower()
    if not MAC.match(mac):
        raise DeviceError("mac: write it as 00:11:22:33:44:55")
    ip = address(field("ip"))
    stamp = field("stamp", 32)
    try:
        finite = math.isfinite(float(stamp))
    except ValueError:
        finite = False
    if not finite:
        raise DeviceError("stamp: not a number of seconds since the epoch")
    name = field("name", 64)
    if not NAME.match(name):
        raise DeviceError("name: 1-64 letters, digits, spaces and .,()-")
    tz = field("tz", 100)
    if tz and not TZ.match(tz):
        raise DeviceError("tz: a time-zone name such as America/New_York")
    raw_log = fields.get("log", "")
    entries = raw_log if isinstance(raw_log, list) else str(raw_log).split(",")
    if len(entries) > MAX_LOG or not all(isinstance(e, str) and LOG_ENTRY.match(e) for e in entries):
        raise DeviceError(f"log: at most {MAX_LOG} comma-separated timestamps")
    return Device(mac=mac, ip=ip, stamp=stamp, name=name, tz=tz, log=tuple(entries))


def address(text: str) -> str:
    """An IPv4 or IPv6 address, with an optional port as Solar Protocol appends its httpPort: ``192.0.2.7``,
    ``192.0.2.7:8080``, ``2001:db8::7``, ``[2001:db8::7]:8080``; normalised. Host names are refused."""
    host, port = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise DeviceError("ip: write an IPv6 address with a port as [2001:db8::7]:8080")
        port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise DeviceError("ip: not an IPv4 or IPv6 address (with an optional :port)") from None
    if text.startswith("[") or port:
        if not (port.isdigit() and 0 < int(port) < 65536):
            raise DeviceError("ip: the port must be 1-65535")
        return f"[{ip}]:{int(port)}" if ip.version == 6 else f"{ip}:{int(port)}"
    return str(ip)


class DeviceList:
    """The list in ``path``; every method may block (callers in the event loop use a thread)."""

    def __init__(
        self,
        path: Path,
        *,
        expiry_days: float = 30,
        flush_interval: float = 0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.expiry = expiry_days * 86400
        self.flush_interval = flush_interval
        self.clock = clock
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._stamps: dict[str, str] = {}  # mac -> the newest stamp, not yet written
        self._held_since = 0.0  # monotonic time the oldest held stamp came in

    def __str__(self) -> str:
        return f"device list {self.path}"

    def read(self) -> list[Device]:
        """The stored devices with their held stamps; unreadable or invalid entries are skipped, never the
        whole list."""
        stamps = self._stamps  # one dict: a writer replaces it, never empties it under a reader
        return [dataclasses.replace(d, stamp=s) if (s := stamps.get(d.mac)) else d for d in self._stored()]

    def _stored(self) -> list[Device]:
        try:
            with self.path.open("rb") as f:
                raw = f.read(MAX_FILE + 1)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise DeviceError(f"cannot read {self.path}: {describe(exc)}") from exc
        try:
            data = json.loads(raw) if len(raw) <= MAX_FILE else None
        except ValueError:
            data = None
        if not isinstance(data, list):
            raise DeviceError(f"{self.path} is not a JSON list of devices; it is left as it is")
        devices = []
        for entry in data:
            try:
                devices.append(validate({**entry, "stamp": entry.get("time stamp", "")}))
            except (DeviceError, AttributeError, TypeError):
                continue
        return devices

    def current(self) -> list[Device]:
        """The stored devices heard from within ``expiry_days``."""
        oldest = self.clock() - self.expiry
        return [d for d in self.read() if float(d.stamp) >= oldest]

    def merge(self, learned: list[Device], *, own_mac: str) -> list[Device]:
        """Add peers another node told us about; an entry we hold is replaced only by a newer one.

        Returns the devices that were new to this list. ``own_mac`` is never taken from another node's word,
        and stamps in the future (another node's clock, or a lie) count as now.
        """
        with self._lock:
            now = self.clock()
            oldest = now - self.expiry
            stored = self.read()
            known = {d.mac: d for d in stored if float(d.stamp) >= oldest}
            new: list[Device] = []
            restamped: list[Device] = []
            changed = len(known) < len(stored)  # beyond the stamps of entries we hold: expired ones go
            for device in learned:
                if float(device.stamp) > now:
                    device = dataclasses.replace(device, stamp=repr(now))  # noqa: PLW2901
                held = known.get(device.mac)
                if device.mac == own_mac or float(device.stamp) < oldest:
                    continue
                if held is None:
                    if len(known) >= MAX_DEVICES:
                        break
                    new.append(device)
                    changed = True
                elif float(held.stamp) >= float(device.stamp):
                    continue
                elif only_restamped(held, device):
                    restamped.append(device)
                else:
                    changed = True
                known[device.mac] = device
            if changed or (restamped and not self.flush_interval):
                self._write(list(known.values()))
            elif restamped:
                self._hold(restamped)
            return new

    def upsert(self, device: Device) -> tuple[list[Device], bool]:
        """Store ``device`` (replacing the entry with its MAC) and drop expired ones.

        Returns the new list and whether the file already held a list (v1 answers only then).
        """
        with self._lock:
            existed = self.path.exists()
            oldest = self.clock() - self.expiry
            updated, placed, changed = [], False, False
            for known in self.read():
                if known.mac == device.mac:  # keep its place, as v1 does
                    updated.append(device)
                    placed, changed = True, changed or not only_restamped(known, device)
                elif float(known.stamp) >= oldest:
                    updated.append(known)
                else:
                    changed = True  # an expired entry goes
            if not placed:
                if len(updated) >= MAX_DEVICES:
                    raise DeviceError(f"{self.path} holds {MAX_DEVICES} devices already")
                updated.append(device)
                changed = True
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
        """The file as v1 echoes it, with the held stamps in it ("" when there is no list)."""
        try:
            return encode(self.read()).decode() if self._stamps else self.path.read_text()
        except (OSError, DeviceError):
            return ""

    def _hold(self, devices: list[Device]) -> None:
        if not self._stamps:
            self._held_since = self.monotonic()
        self._stamps = {**self._stamps, **{d.mac: d.stamp for d in devices}}

    def _write(self, devices: list[Device]) -> None:
        try:
            replace_atomically(self.path, encode(devices))
        except OSError as exc:
            raise DeviceError(f"cannot write {self.path}: {describe(exc)}; the list is unchanged") from exc
        self._stamps = {}  # written: the file has them now


def only_restamped(before: Device, after: Device) -> bool:
    """Whether ``after`` differs from ``before`` in its stamp alone (a node announcing itself again)."""
    return dataclasses.replace(before, stamp=after.stamp) == after


def encode(devices: list[Device]) -> bytes:
    """The file's bytes: v1's JSON array, compact."""
    return json.dumps([d.as_json() for d in devices], separators=(",", ":")).encode()


@contextlib.asynccontextmanager
async def written_when_due(devices: DeviceList | None) -> AsyncIterator[None]:
    """While entered, write ``devices``' held stamps when their window ends; when left, whatever is held."""
    task = asyncio.create_task(_write_when_due(devices), name="nutbridge.device-list") if devices else None
    try:
        yield
    finally:
        if task and devices:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
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
