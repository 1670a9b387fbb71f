"""``[source] kind = "envoy"``: the gateway, the Enlighten account its token comes from, and where it is kept."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from nutbridge.config_keys import HOST, _https, _path, key, seconds

ENLIGHTEN_LOGIN = "https://enlighten.enphaseenergy.com/login/login.json?"  # the "?" is part of it, as enphase-monitor's
ENTREZ_TOKENS = "https://entrez.enphaseenergy.com/tokens"


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoyConfig:
    """``[source] kind = "envoy"``: an Enphase IQ Gateway, with a token from Enphase's cloud."""

    kind: ClassVar[str] = "envoy"
    host: str = key("envoy.local", types=str, check=lambda v: bool(HOST.match(v)), allowed="a host name or address")
    serial: str | None = key(
        types=str, check=lambda v: v.isalnum(), redact="serial", allowed="the gateway's serial number"
    )
    username: str | None = key(types=str, check=bool, redact="name", allowed="your Enlighten user name (e-mail)")
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

    def missing(self, test: bool) -> str | None:
        """The gateway's serial and the Enlighten account its token comes from; TEST mode reads no gateway."""
        lacking = [k for k in ("serial", "username", "password") if getattr(self, k) is None]
        return f"the Enphase gateway needs source.{', source.'.join(lacking)}" if lacking and not test else None

    @property
    def timeout(self) -> float:
        """What one poll may take: the gateway's answers, plus a token renewal's login."""
        return self.api_timeout
