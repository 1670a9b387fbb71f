"""Parse a Modbus source URL into connection settings, for every Modbus family; pure, no pymodbus."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from nutbridge.errors import ConfigError
from nutbridge.redact import has_password, redact_url

SCHEMES = ("rtu", "tcp", "rtu+tcp")
SERIAL_OPTIONS = {"baudrate": int, "bytesize": int, "parity": str, "stopbits": int}
# What pyserial accepts, checked here so a bad value is a configuration error (exit 78), not a traceback.
SERIAL_CHECKS = {
    "baudrate": (lambda v: 50 <= v <= 4_000_000, "50-4000000"),
    "bytesize": (lambda v: v in (5, 6, 7, 8), "5, 6, 7 or 8"),
    "parity": (lambda v: v in ("N", "E", "O"), "N, E or O"),
    "stopbits": (lambda v: v in (1, 2), "1 or 2"),
}
DEFAULT_TCP_PORT = 502


@dataclass(frozen=True, slots=True, kw_only=True)
class ModbusTarget:
    """Where a Modbus device is and how frames travel to it."""

    scheme: str
    host: str = ""
    port: int = DEFAULT_TCP_PORT
    device: str = ""  # serial device path, for rtu
    baudrate: int = 115200
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1
    device_id: int | None = None

    @property
    def rtu_framing(self) -> bool:
        """True when frames are RTU (serial line, or raw RTU through a transparent TCP gateway)."""
        return self.scheme in ("rtu", "rtu+tcp")

    def __str__(self) -> str:
        if self.scheme == "rtu":
            return f"rtu://{self.device}?baudrate={self.baudrate}"
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_modbus_url(url: str, where: str) -> ModbusTarget:
    """Parse ``rtu:///dev/ttyUSB0?baudrate=115200``, ``tcp://host:502`` or ``rtu+tcp://host:port``.

    ``where`` names the file and key (or flag) for error messages. A password in the URL never reaches them.
    """
    shown = redact_url(url)
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise ConfigError(f"{where}: {shown!r} is not a valid URL") from None
    if has_password(url) or parts.username:
        raise ConfigError(f"{where}: {shown!r}: Modbus has no user or password; remove the part before '@'")
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"{where}: {shown!r} is not a Modbus URL; allowed schemes: {', '.join(SCHEMES)}")
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    options: dict[str, int | str] = {}
    for name, values in query.items():
        if name == "device_id":
            kind: type = int
        elif name in SERIAL_OPTIONS and parts.scheme == "rtu":
            kind = SERIAL_OPTIONS[name]
        else:
            allowed = "device_id" + (", " + ", ".join(SERIAL_OPTIONS) if parts.scheme == "rtu" else "")
            raise ConfigError(f"{where}: unknown option {name!r} in {shown!r}; allowed: {allowed}")
        try:
            options[name] = kind(values[-1])
        except ValueError:
            raise ConfigError(f"{where}: option {name!r} in {shown!r} must be {kind.__name__}") from None
    if "device_id" in options and not 1 <= int(options["device_id"]) <= 247:
        raise ConfigError(f"{where}: device_id must be 1-247 (0 is broadcast and gets no reply)")
    for name, (check, allowed) in SERIAL_CHECKS.items():
        if name in options and not check(options[name]):  # type: ignore[no-untyped-call]
            raise ConfigError(f"{where}: {name}={options[name]} in {shown!r} is not allowed; use {allowed}")
    if parts.scheme == "rtu":
        if not parts.path or parts.netloc:
            raise ConfigError(f"{where}: write a serial device as rtu:///dev/ttyUSB0 (three slashes)")
        return ModbusTarget(scheme="rtu", device=parts.path, **options)  # type: ignore[arg-type]
    try:
        port = parts.port or DEFAULT_TCP_PORT
    except ValueError:
        raise ConfigError(f"{where}: bad port in {shown!r}") from None
    if not parts.hostname:
        raise ConfigError(f"{where}: {shown!r} has no host; write {parts.scheme}://HOST:PORT")
    return ModbusTarget(scheme=parts.scheme, host=parts.hostname, port=port, **options)  # type: ignore[arg-type]
