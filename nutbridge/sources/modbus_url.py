"""Parse a Modbus source URL into connection settings; pure, no pymodbus."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from nutbridge.errors import ConfigError

SCHEMES = ("rtu", "tcp", "rtu+tcp")
SERIAL_OPTIONS = {"baudrate": int, "bytesize": int, "parity": str, "stopbits": int}
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

    ``where`` names the file and key (or flag) for error messages.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"{where}: {url!r} is not a Modbus URL; allowed schemes: {', '.join(SCHEMES)}")
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    options: dict[str, int | str] = {}
    for name, values in query.items():
        if name == "device_id":
            kind: type = int
        elif name in SERIAL_OPTIONS and parts.scheme == "rtu":
            kind = SERIAL_OPTIONS[name]
        else:
            allowed = "device_id" + (", " + ", ".join(SERIAL_OPTIONS) if parts.scheme == "rtu" else "")
            raise ConfigError(f"{where}: unknown option {name!r} in {url!r}; allowed: {allowed}")
        try:
            options[name] = kind(values[-1])
        except ValueError:
            raise ConfigError(f"{where}: option {name!r} in {url!r} must be {kind.__name__}") from None
    if "device_id" in options and not 1 <= int(options["device_id"]) <= 247:
        raise ConfigError(f"{where}: device_id must be 1-247 (0 is broadcast and gets no reply)")
    if str(options.get("parity", "N")) not in ("N", "E", "O"):
        raise ConfigError(f"{where}: parity must be N, E or O")
    if parts.scheme == "rtu":
        if not parts.path or parts.netloc:
            raise ConfigError(f"{where}: write a serial device as rtu:///dev/ttyUSB0 (three slashes)")
        return ModbusTarget(scheme="rtu", device=parts.path, **options)  # type: ignore[arg-type]
    try:
        port = parts.port or DEFAULT_TCP_PORT
    except ValueError:
        raise ConfigError(f"{where}: bad port in {url!r}") from None
    if not parts.hostname:
        raise ConfigError(f"{where}: {url!r} has no host; write {parts.scheme}://HOST:PORT")
    return ModbusTarget(scheme=parts.scheme, host=parts.hostname, port=port, **options)  # type: ignore[arg-type]
