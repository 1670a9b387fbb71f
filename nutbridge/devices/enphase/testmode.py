"""TEST mode for the Enphase gateway: fixture answers instead of the network, as enphase-monitor's TEST_*.

The fixtures are enphase-monitor's keys (``TEST_SESS``, ``TEST_TOKEN``, ``TEST_RELAY``, ``TEST_LIVE``,
``TEST_REPORTS``, ``TEST_SECCTRL``, ``TEST_INFO``), with its placeholders ``@RELAY_STATE@`` and ``@BATT_SOC@``;
an empty one makes that query fail. Those not given come from the answers shipped in ``fixtures/`` (a
split-phase site with a 10 kWh battery) and a token made here that expires in ten years. In the nocomms
state every gateway query fails; the cloud login still answers. About one poll in five the token counts as
expired, so the renewal is seen working too.
"""

from __future__ import annotations

import importlib.resources
import logging
import random
import time
from collections.abc import Mapping

import httpx
import jwt

from nutbridge.devices.enphase.token import TokenCache
from nutbridge.testmode import Driver, State

log = logging.getLogger(__name__)

FILES = {"sess": "session.json", "relay": "relay.json", "live": "live.json", "reports": "reports.json",
         "secctrl": "secctrl.json", "info": "info.xml"}  # fmt: skip
PATHS = {"ivp/ensemble/relay": "relay", "ivp/livedata/status": "live", "ivp/meters/reports": "reports",
         "ivp/ensemble/secctrl": "secctrl", "info.xml": "info"}  # fmt: skip
EXPIRE_ONE_IN = 5


def shipped(name: str) -> str:
    return (importlib.resources.files("nutbridge.devices.enphase") / "fixtures" / FILES[name]).read_text()


def test_token(serial: str) -> str:
    """A token shaped like Entrez's, valid for ten years (its signature is never checked)."""
    now = int(time.time())
    claims = {"iss": "Entrez", "iat": now, "exp": now + 10 * 365 * 86400, "aud": serial, "username": "test"}
    return jwt.encode(claims, "nutbridge TEST mode: an HS256 key of 32 bytes or more", algorithm="HS256")


class FixtureGateway:
    """The cloud and the gateway, answered from fixtures in the state the cycle last set."""

    def __init__(self, fixtures: Mapping[str, str | None], *, serial: str, login_url: str, token_url: str) -> None:
        self.answers = {name: shipped(name) for name in FILES} | {"token": test_token(serial)}
        self.answers.update({k: v for k, v in fixtures.items() if v is not None})
        self.login_url, self.token_url = login_url, token_url
        self.state = State.ONLINE
        self.charge = 100.0
        self.transport = httpx.MockTransport(self.answer)

    def answer(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url.startswith(self.login_url.rstrip("?")):
            return self.reply("sess", "login")
        if url.startswith(self.token_url):
            return self.reply("token", "tokens")
        if self.state is State.NOCOMMS:
            raise httpx.ConnectError("Testing nocomms", request=request)
        name = PATHS.get(request.url.path.lstrip("/"))
        if name is None:
            return httpx.Response(404)
        relay = "open" if self.state in (State.ONBATT, State.LOWBATT) else "closed"
        text = self.answers.get(name) or ""
        return self.reply(name, name, text.replace("@RELAY_STATE@", relay).replace("@BATT_SOC@", f"{self.charge:g}"))

    def reply(self, name: str, what: str, text: str | None = None) -> httpx.Response:
        body = self.answers.get(name) if text is None else text
        if not body:
            log.info("Testing %s failure", what)
            return httpx.Response(500)
        return httpx.Response(200, text=body)

    def driver(self, tokens: TokenCache) -> Driver:
        """The StateCycle driver: set the state; now and then let the token expire."""

        async def drive(state: State, charge: float) -> None:
            self.state, self.charge = state, charge
            if random.randrange(EXPIRE_ONE_IN) == 0:  # a test's dice, not a secret
                log.info("TEST mode: the token counts as expired")
                await tokens.renew()

        return drive
