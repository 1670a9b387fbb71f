"""The `[source]` section, one frozen dataclass per device family (Tracer, simulator, Envoy, Powerwall),
picked by `kind`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from nutbridge.config_keys import HOST, _clock_time, _http, _https, _modbus, _path, _seconds_of_day, key, seconds
from nutbridge.sources.modbus_url import ModbusTarget

ENLIGHTEN_LOGIN = "https://enlighten.enphaseenergy.com/login/login.json?"  # the "?" is part of it, as enphase-monitor's


ENTREZ_TOKENS = "https://entrez.enphaseenergy.com/tokens"


@dataclass(frozen=True, slots=True, kw_only=True)
class TracerConfig:
    """``[source] kind = "tracer"``: an EPEver Tracer over Modbus."""

    kind: ClassVar[str] = "tracer"
    url: ModbusTarget | None = key(
        types=str,
        convert=_modbus,
        url=True,
        allowed="rtu:///dev/ttyUSB0?baudrate=115200, tcp://HOST:502 or rtu+tcp://HOST:PORT",
    )
    device_id: int = key(1, types=int, check=lambda v: 1 <= v <= 247, allowed="an integer 1-247")
    timeout: float = key(1.0, **seconds(0.05, 30))


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorConfig:
    """``[source] kind = "simulator"``: the built-in simulated Tracer, reached over loopback Modbus TCP."""

    kind: ClassVar[str] = "simulator"
    speed: float = key(1.0, types=(int, float), check=lambda v: 0.1 <= v <= 10_000, allowed="0.1-10000 (× real time)")
    start: float | None = key(types=str, check=_clock_time, convert=_seconds_of_day,
                              allowed="the simulated time of day to start at, HH:MM")  # fmt: skip
    timeout: float = key(1.0, **seconds(0.05, 30))


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoyConfig:
    """``[source] kind = "envoy"``: an Enphase IQ Gateway, with a token from Enphase's cloud."""

    kind: ClassVar[str] = "envoy"
    host: str = key("envoy.local", types=str, check=lambda v: bool(HOST.match(v)), allowed="a host name or address")
    serial: str | None = key(types=str, check=lambda v: v.isalnum(), allowed="the gateway's serial number")
    username: str | None = key(types=str, check=bool, allowed="your Enlighten user name (e-mail)")
    password: str | None = key(types=str, check=bool, secret=True, allowed="your Enlighten password")
    token_file: Path | None = key(
        types=str, check=bool, convert=_path, allowed="where the token is kept (default: the state folder)"
    )
    state_dir: Path | None = key(types=str, check=bool, convert=_path, allowed="a folder that is not world-writable")
    login_timeout: float = key(10.0, **seconds(5, 120))
    api_timeout: float = key(10.0, **seconds(2, 120))
    load_kwh: float = key(
        768.0, types=(int, float), check=lambda v: v >= 0, allowed="watts per kWh of battery; 0: no ups.load"
    )
    meters: bool = key(True, types=bool, allowed="true or false (false: enphase-monitor's DISABLE_METERS)")
    login_url: str = key(ENLIGHTEN_LOGIN, types=str, check=_https, allowed="an https:// URL")
    token_url: str = key(ENTREZ_TOKENS, types=str, check=_https, allowed="an https:// URL")

    @property
    def timeout(self) -> float:
        """What one poll may take: the gateway's answers, plus a token renewal's login."""
        return self.api_timeout


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerwallConfig:
    """``[source] kind = "powerwall"``: a Tesla Powerwall through a pyPowerwall proxy (it handles Tesla's login)."""

    kind: ClassVar[str] = "powerwall"
    url: str = key("http://localhost:8675", types=str, check=_http, url=True, allowed="the proxy's http(s):// URL")
    timeout: float = key(5.0, **seconds(0.5, 60))


SourceConfig = TracerConfig | SimulatorConfig | EnvoyConfig | PowerwallConfig


SOURCE_KINDS: Mapping[str, type[SourceConfig]] = {
    cls.kind: cls for cls in (TracerConfig, SimulatorConfig, EnvoyConfig, PowerwallConfig)
}
