"""``[source] kind = "powerwall"``: the pyPowerwall proxy's URL and how long it may take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from nutbridge.config_keys import _http, key, seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerwallConfig:
    """``[source] kind = "powerwall"``: a Tesla Powerwall through a pyPowerwall proxy (it handles Tesla's login)."""

    kind: ClassVar[str] = "powerwall"
    url: str = key("http://localhost:8675", types=str, check=_http, url=True, allowed="the proxy's http(s):// URL")
    timeout: float = key(5.0, **seconds(0.5, 60))
