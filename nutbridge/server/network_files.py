"""The device list and the peers' data as Solar Protocol's PHP reads them, for the legacy routes' ``networkInfo``
and ``server`` answers: the list file's own entries (a key an entry lacks is null, an entry this node would
refuse is still listed, as v1 lists it), and the files v1's ``getRemoteData.py`` leaves for each listed node
(``<name without spaces, lower case>.json``: four days of rows, header first). Only listed nodes' files are
ever read: v1 reads any path it is given (``server=../access`` answers the admin password hashes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nutbridge.peers.devices import DeviceList
from nutbridge.server import php

MAX_PEER_FILE = 4 * 1024 * 1024  # a peer's cached four days is some 400 KB
MAX_ALL = 32 * 1024 * 1024  # server=all reads at most this much: past it, the other nodes' are "err"
CANONICAL_INT = re.compile(r"^(0|-?[1-9][0-9]{0,17})$")  # a string PHP takes as an integer array key
MISSING = object()  # a peer file that is not there, or not JSON


def file_name(name: str) -> str:
    """v1's file name for a node: its name without spaces, in lower case."""
    return name.replace(" ", "").lower()


def loose_null(value: Any) -> bool:
    """``$value == null`` in PHP 8."""
    return value in (None, [], "", 0, False) and not isinstance(value, php.JsonObject)


class NetworkFiles:
    """``devices``' file and the peers' data in ``folder`` (None: this node keeps none)."""

    def __init__(self, devices: DeviceList | None, folder: Path | None) -> None:
        self.devices = devices
        self.folder = folder

    def entries(self) -> list[dict[str, Any]]:
        text = self.devices.text() if self.devices is not None else ""
        try:
            data = json.loads(text) if text else []
        except ValueError:
            return []
        return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []

    def field(self, key: str) -> list[Any]:
        return [entry.get(key) for entry in self.entries()]

    def dump(self) -> dict[str, list[Any]]:
        return {"name": self.field("name"), "poe": self.field("log"), "tz": self.field("tz"),
                "timestamp": self.field("time stamp")}  # fmt: skip

    def names(self) -> list[str]:
        """The listed nodes' file names (without ``.json``), in the list's order."""
        return [file_name(n) if isinstance(n, str) else "" for n in self.field("name")]

    def read(self, name: str) -> str | None:
        """A listed node's data file as stored; None when there is none (or ``name`` is not a listed node's)."""
        if self.folder is None or not name or name not in self.names() or "/" in name or name.startswith("."):
            return None
        try:
            with (self.folder / f"{name}.json").open("rb") as f:
                raw = f.read(MAX_PEER_FILE + 1)
        except OSError:
            return None
        return raw.decode("utf-8", "replace") if len(raw) <= MAX_PEER_FILE else None

    def decoded(self, name: str) -> Any:
        """A listed node's data as ``json_decode`` gives it (objects stay objects; None when it is no JSON), or
        MISSING when there is no file or an empty one."""
        return self.decode(self.read(name))

    @staticmethod
    def decode(text: str | None) -> Any:
        try:
            return MISSING if not text else json.loads(text, object_pairs_hook=php.JsonObject)
        except ValueError:
            return None

    def every(self, names: list[str]) -> Iterator[tuple[str, Any]]:
        """Each listed node's data, MISSING past MAX_ALL bytes in all (peers' answers decide these files' sizes)."""
        left = MAX_ALL
        for name in names:
            text = self.read(name) if left > 0 else None
            left -= len(text or "")
            yield name, self.decode(text) if left >= 0 else MISSING

    def index(self, which: str) -> int | None:
        """The list position ``$list[$which]`` finds, or None."""
        return int(which) if CANONICAL_INT.match(which) and 0 <= int(which) < len(self.names()) else None

    def server(self, which: php.Param) -> str:
        """v1's ``server=``: the N-th listed node's file, ``all`` (every one by name, "err" where there is none)
        or a node's by name, as stored."""
        if isinstance(which, list):  # PHP 8 fails on an array here
            return ""
        names = self.names()
        if which == "all":
            out: dict[str, Any] = {}
            for name, data in self.every(names):
                out[name] = "err" if data is MISSING or loose_null(data) else data
            return php.json_encode(out)
        if php.is_numeric(which):
            position = self.index(which)
            return "" if position is None else self.read(names[position]) or ""
        return self.read(file_name(which)) or ""

    def server_v2(self, which: php.Param) -> str:
        """v2's ``server=``: the same files as ``{"header", "server", "data" (without the header), "timezone"}``."""
        if isinstance(which, list):
            return ""
        names, zones = self.names(), self.field("tz")
        if which == "all":
            header: Any = None
            out: dict[str, Any] = {}
            for name, data in self.every(names):
                if data is MISSING:
                    out[name] = "err"
                    continue
                header, out[name] = split_header(data)
            return php.json_encode({"header": header, "server": "all", "data": out, "timezone": zones})
        if php.is_numeric(which):
            position = self.index(which)
            data = MISSING if position is None else self.decoded(names[position])
            zone = None if position is None else zones[position]
            header, rows = split_header(data)
            return php.json_encode({"header": header, "server": php.intval(which), "data": rows, "timezone": zone})
        name = file_name(which)
        data = self.decoded(name)
        zone = zones[names.index(name)] if name in names else zones[0] if zones else None  # array_search's false is 0
        header, rows = split_header(data)
        return php.json_encode({"header": header, "server": which, "data": rows, "timezone": zone})


def split_header(data: Any) -> tuple[Any, list[Any]]:
    """``$data[0]`` and the rest, as v2 takes a peer file apart (nothing for what is not a list)."""
    if isinstance(data, list) and data:
        return data[0], data[1:]
    return None, []
