"""This node's identity, as Solar Protocol keeps it in local.json: name, description, location, city, country,
bgColor, pvWatts, pvVolts. Read from an existing node's file unchanged, or set in ``[node]`` itself. With it, what
the configuration, the v1 routes and the peer network all need of a node: its time zone and a MAC's form."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nutbridge.errors import ConfigError

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")  # a node's MAC address, in lower case
KEYS = ("name", "description", "location", "city", "country", "bgColor", "pvWatts", "pvVolts")
MAX_LOCAL_JSON = 256 * 1024


def load_local_json(path: Path) -> dict[str, Any]:
    """An existing node's local.json, as a JSON object (other keys kept: v1 files hold more)."""
    import json  # here: the configuration imports this module; only [node] local_json reads JSON

    try:
        raw = path.read_bytes()[: MAX_LOCAL_JSON + 1]
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = json.loads(raw) if len(raw) <= MAX_LOCAL_JSON else None
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a JSON object of node settings")
    return data


class Node:
    """The identity the legacy routes answer from; ``info`` holds local.json's keys and values."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        self.info = dict(info)

    def wattage_scaler(self) -> float | int | None:
        """50 W ÷ pvWatts, so every node's PV power compares with a 50 W panel's; 1 without pvWatts.

        As v1: an empty pvWatts gives no scaler (None, which scales to 0). Unlike v1 (a 500 on PHP 8), a
        pvWatts of 0 or that is no number gives no scaler either.
        """
        if "pvWatts" not in self.info:
            return 1
        watts = self.info["pvWatts"]
        try:
            value = float(watts) if watts != "" and not isinstance(watts, bool) else 0.0
        except (TypeError, ValueError):
            value = 0.0
        return 50.0 / value if value > 0 else None


def local_zone() -> str:
    """The system's time-zone name (what a Pi's php.ini is set to): $TZ, /etc/timezone, /etc/localtime, UTC."""
    if os.environ.get("TZ", "").strip(":"):
        return os.environ["TZ"].strip(":")
    try:
        return Path("/etc/timezone").read_text().strip() or "UTC"
    except OSError:
        pass
    target = os.path.realpath("/etc/localtime")
    return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "UTC"


def normal_address(text: str) -> str:
    """An IPv4 or IPv6 address, with an optional port as Solar Protocol appends its httpPort: ``192.0.2.7``,
    ``192.0.2.7:8080``, ``2001:db8::7``, ``[2001:db8::7]:8080``; normalised. Host names are refused (ValueError
    says why)."""
    host, port = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError("write an IPv6 address with a port as [2001:db8::7]:8080")
        port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError("not an IPv4 or IPv6 address (with an optional :port)") from None
    if text.startswith("[") or port:
        if not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError("the port must be 1-65535")
        return f"[{ip}]:{int(port)}" if ip.version == 6 else f"{ip}:{int(port)}"
    return str(ip)
