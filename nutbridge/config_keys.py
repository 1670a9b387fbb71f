"""How a configuration key is declared and checked: the Key schema (types, check, allowed, conversion,
secrecy), `key()` for a section's field, and the checks and conversions the sections share."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nutbridge.errors import ConfigError
from nutbridge.node import normal_address
from nutbridge.redact import KINDS

if TYPE_CHECKING:  # imported where a version is parsed: nutbridge-driver has no port file, and no dialect
    from nutbridge.nut.version import NutVersion

MIN_POLL_INTERVAL = 0.2


HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[0-9A-Za-z.-]{1,253})(:\d{1,5})?$")


TOPIC = re.compile(r"^[^+#\s\x00]{1,200}$")


ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[0-9A-Za-z.:-]{1,253})(:\d{1,5})?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Key:
    """How one TOML key is read: its types, a check, the words for what is allowed, and a conversion.

    ``secret`` marks a value that must never be printed and makes a group- or world-readable file refused;
    ``url`` marks a URL, which counts as a secret when it carries a password. ``redact`` names what a value
    that is no secret identifies (a kind of ``redact.KINDS``: "serial", "name"...): ``nutbridge capture``
    replaces it wherever a device's answer holds it, as it replaces secrets and a URL's password.
    """

    types: type | tuple[type, ...]
    allowed: str
    check: Callable[[Any], bool] | None = None
    convert: Callable[[Any, str, Path], Any] | None = None  # (value, where, base_dir) → field value
    secret: bool = False
    url: bool = False
    redact: str | None = None

    def __post_init__(self) -> None:
        if self.redact is not None and self.redact not in KINDS:
            raise ValueError(f"redact={self.redact!r}: use one of {', '.join(KINDS)}")


def key(default: Any = None, **spec: Any) -> Any:
    """A dataclass field read from TOML as ``Key(**spec)`` describes."""
    return field(default=default, metadata={"key": Key(**spec)})


def seconds(low: float, high: float) -> dict[str, Any]:
    """A Key spec for a number of seconds in [low, high]."""
    return {"types": (int, float), "check": lambda v: low <= v <= high, "allowed": f"seconds, {low:g}-{high:g}"}


def _path(value: str, _where: str, base: Path) -> Path:
    return base / Path(value).expanduser()


def _command(value: str, where: str, _base: Path) -> tuple[str, ...]:
    return parse_command(value, where)


def _version(value: str, where: str, _base: Path) -> NutVersion:
    from nutbridge.nut.version import parse_version

    return parse_version(value, where)


def _tuple(value: list[str], _where: str, _base: Path) -> tuple[str, ...]:
    return tuple(value)


def _lower(value: str, _where: str, _base: Path) -> str:
    return value.lower()


def _public_ip(value: str, where: str, _base: Path) -> str:
    """``[peers] public_ip`` as the device list will store it."""
    try:
        return normal_address(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: ip: {exc}") from None


def _addresses(value: list[object]) -> bool:
    """Node addresses: an IP or host name, with an optional :port."""
    return len(value) <= 1000 and all(isinstance(a, str) and ADDRESS.match(a) for a in value)


def _ranges(value: list[object]) -> bool:
    """CIDR ranges, e.g. 10.77.0.0/24 or ::1/128."""
    import ipaddress  # here: the daemon's cold start pays for it only with [peers]

    if len(value) > 100 or not all(isinstance(r, str) for r in value):
        return False
    try:
        [ipaddress.ip_network(str(r), strict=False) for r in value]
    except ValueError:
        return False
    return True


def _argv(value: list[object]) -> bool:
    return 0 < len(value) <= 100 and all(isinstance(a, str) and a for a in value)


def _https(value: str) -> bool:
    return value.startswith("https://") and len(value) <= 500


def _http(value: str) -> bool:
    return value.startswith(("http://", "https://")) and len(value) <= 500


def _clock_time(value: str) -> bool:
    hours, sep, minutes = value.partition(":")
    return bool(sep) and hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60


def _seconds_of_day(value: str, _where: str, _base: Path) -> float:
    hours, _, minutes = value.partition(":")
    return int(hours) * 3600.0 + int(minutes) * 60.0


def _listen(value: str, where: str, _base: Path) -> tuple[str, int]:
    return parse_listen(value, where)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: a listener no other machine can reach."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(value: str, where: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) → (host, port)."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: {value!r} is not an address to listen on; write it as 127.0.0.1:8080")
    return host, int(port)


def parse_command(value: str, where: str) -> tuple[str, ...]:
    """A command line split as a shell would (no shell runs it); ``""`` means none."""
    import shlex  # here: only [nut] driver_restart_command is split

    try:
        return tuple(shlex.split(value))
    except ValueError as exc:
        raise ConfigError(f"{where}: {value!r} is not a valid command line ({exc})") from None
