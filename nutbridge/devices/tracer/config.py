"""``[source] kind = "tracer"``: where the Tracer is (a Modbus URL), its device id, how long it may take, and
whether a poll reads across the register map's gaps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from nutbridge.config_keys import key, seconds
from nutbridge.devices.base import NO_SOURCE
from nutbridge.devices.modbus import ModbusTarget, parse_modbus_url


def modbus_url(value: str, where: str, _base: Path) -> ModbusTarget:
    """The key's conversion: a Modbus URL, checked by the parser the source uses."""
    return parse_modbus_url(value, where)


def coalesce_mode(value: bool | str, _where: str, _base: Path) -> bool | None:
    """The key's conversion: true or false as written, ``"auto"`` as None (probe the unit)."""
    return None if value == "auto" else bool(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class TracerConfig:
    """``[source] kind = "tracer"``: an EPEver Tracer over Modbus."""

    kind: ClassVar[str] = "tracer"
    url: ModbusTarget | None = key(
        types=str,
        convert=modbus_url,
        url=True,
        allowed="rtu:///dev/ttyUSB0?baudrate=115200, tcp://HOST:502 or rtu+tcp://HOST:PORT",
    )
    device_id: int = key(1, types=int, check=lambda v: 1 <= v <= 247, allowed="an integer 1-247")
    timeout: float = key(1.0, **seconds(0.05, 30))
    # None (auto): 3 reads a poll across the map's gaps if the unit answers them, else the 6 gap-free ones.
    coalesce: bool | None = key(
        types=(bool, str),
        check=lambda v: v in ("auto", True, False),
        convert=coalesce_mode,
        allowed='"auto", true (reads across the register map\'s gaps) or false (never)',
    )

    def missing(self, _test: bool) -> str | None:
        """A Tracer needs its URL, from the file or ``--source`` (TEST mode too: it is checked before the mode)."""
        return NO_SOURCE if self.url is None else None
