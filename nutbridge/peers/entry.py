"""One entry of the device list as a peer posts it and the file stores it: Solar Protocol v1's fields (``mac``,
``ip``, ``time stamp``, ``name``, ``tz``, ``log``) each checked (``validate``), so nothing a peer sends reaches a
file, a URL or a page unchecked; the entry's size as stored and its cap; the errors a bad one raises; and refused
posts logged once per sender and kind an hour.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nutbridge.errors import NutbridgeError
from nutbridge.node import MAC, normal_address

log = logging.getLogger(__name__)

NAME = re.compile(r"^[\w .,()-]{1,64}$")  # any script's letters, digits, a little punctuation; nothing HTML-special
LOST_PLUS = re.compile(r"^(Etc/)?GMT \d{1,2}$")  # the only zone names with a '+' (IANA's Etc/GMT+N)
TZ = re.compile(r"^[A-Za-z0-9_+\-]{1,32}(/[A-Za-z0-9_+\-]{1,32}){0,2}$")
LOG_ENTRY = re.compile(r"^[\w :.+\-]{0,40}$")
MAX_LOG = 256
# Bytes as stored (JSON with non-ASCII escaped: an astral-plane letter takes 12 bytes). An honest entry with v1's
# 216 log lines takes about 6.5 KB.
MAX_ENTRY = 8 * 1024


class DeviceError(NutbridgeError):
    """A device entry is invalid, or the list cannot be read or written."""


class DeviceRefused(DeviceError):
    """A valid entry this list does not take: an address the policy refuses, or a cap it would break."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    """One node, validated."""

    mac: str
    ip: str
    stamp: str  # epoch seconds, as the node sent it
    name: str
    tz: str
    log: tuple[str, ...]

    @property
    def key(self) -> str:
        """The MAC in lower case: who the entry is. ``mac`` stays as the node sent it, as v1 stores it, so a v1
        client that finds itself in the list by its own spelling still does; the case never makes two nodes."""
        return self.mac.lower()

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

    mac = field("mac")
    if not MAC.match(mac.lower()):
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
    if LOST_PLUS.match(tz):  # v1 posts an unencoded body: Etc/GMT+5 arrives as Etc/GMT 5
        tz = tz.replace(" ", "+")
    if tz and not TZ.match(tz):
        raise DeviceError("tz: a time-zone name such as America/New_York")
    raw_log = fields.get("log", "")
    entries = raw_log if isinstance(raw_log, list) else str(raw_log).split(",")
    if len(entries) > MAX_LOG or not all(isinstance(e, str) and LOG_ENTRY.match(e) for e in entries):
        raise DeviceError(f"log: at most {MAX_LOG} comma-separated timestamps")
    device = Device(mac=mac, ip=ip, stamp=stamp, name=name, tz=tz, log=tuple(entries))
    if (size := stored_size(device)) > MAX_ENTRY:
        raise DeviceRefused(f"entry: {size} bytes as stored, over the {MAX_ENTRY} a node's entry may take")
    return device


def stored_size(device: Device) -> int:
    """The entry's bytes in the file."""
    return len(json.dumps(device.as_json(), separators=(",", ":")))  # ASCII: one character, one byte


def address(text: str) -> str:
    """A node's address as the list stores it (node.normal_address); DeviceError names the field."""
    try:
        return normal_address(text)
    except ValueError as exc:
        raise DeviceError(f"ip: {exc}") from None


class RefusalLog:
    """Refused updates, logged once per sender and kind of reason (the field it names) an hour, not once per
    request: a node that posts the same bad entries every few seconds, or several kinds in turn, makes a line
    for each kind. Remembers the newest LIMIT (sender, kind) pairs."""

    LIMIT = 4096
    REPEAT = 3600.0  # seconds before the same kind from the same sender is logged again

    def __init__(self, what: str, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.monotonic = monotonic
        self._logged: dict[tuple[str, str], float] = {}  # (sender, kind) -> when it was logged, oldest first

    def refused(self, sender: str, reason: str) -> None:
        key, now = (sender, reason.partition(":")[0]), self.monotonic()
        logged = self._logged.pop(key, None)
        if logged is None or now - logged >= self.REPEAT:
            log.warning("%s from %s refused: %s", self.what, sender, reason[:300])
            logged = now
        self._logged[key] = logged
        while len(self._logged) > self.LIMIT:
            del self._logged[next(iter(self._logged))]
