"""The device list: every node of the solar network this node has heard of, keyed by MAC address.

The file keeps Solar Protocol's deviceList.json shape (a JSON array of objects with ``mac``, ``ip``,
``time stamp``, ``name``, ``tz``, ``log``), so the v1 tools that read it still can. Unlike v1's api.php it
validates every field, writes under a lock by atomic replace (a reader never sees half a file, two posts
never lose one another), never resets the list on a bad read, and drops entries not heard from for
``expiry_days``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import math
import re
import threading
import time
from collections.abc import Mapping
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

    def __init__(self, path: Path, *, expiry_days: float = 30, clock: Any = time.time) -> None:
        self.path = path
        self.expiry = expiry_days * 86400
        self.clock = clock
        self._lock = threading.Lock()

    def __str__(self) -> str:
        return f"device list {self.path}"

    def read(self) -> list[Device]:
        """The stored devices; unreadable or invalid entries are skipped, never the whole list."""
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
            known = {d.mac: d for d in self.read() if float(d.stamp) >= oldest}
            new: list[Device] = []
            changed = False
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
                elif float(held.stamp) >= float(device.stamp):
                    continue
                known[device.mac] = device
                changed = True
            if changed:
                self._write(list(known.values()))
            return new

    def upsert(self, device: Device) -> tuple[list[Device], bool]:
        """Store ``device`` (replacing the entry with its MAC) and drop expired ones.

        Returns the new list and whether the file already held a list (v1 answers only then).
        """
        with self._lock:
            existed = self.path.exists()
            oldest = self.clock() - self.expiry
            updated, placed = [], False
            for known in self.read():
                if known.mac == device.mac:  # keep its place, as v1 does
                    updated.append(device)
                    placed = True
                elif float(known.stamp) >= oldest:
                    updated.append(known)
            if not placed:
                if len(updated) >= MAX_DEVICES:
                    raise DeviceError(f"{self.path} holds {MAX_DEVICES} devices already")
                updated.append(device)
            self._write(updated)
            return updated, existed

    def _write(self, devices: list[Device]) -> None:
        data = json.dumps([d.as_json() for d in devices], separators=(",", ":")).encode()
        try:
            replace_atomically(self.path, data)
        except OSError as exc:
            raise DeviceError(f"cannot write {self.path}: {describe(exc)}; the list is unchanged") from exc
