"""A fake Enlighten/Entrez cloud and the JWTs it hands out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web

SERIAL = "122233445566"


USERNAME = "owner@example.org"


def make_jwt(exp: object, **claims: Any) -> str:
    """A token shaped like Entrez's (HS256 instead of ES256: the signature is not checked); no exp for None."""
    payload: dict[str, Any] = {"aud": SERIAL, "iss": "Entrez", "enphaseUser": "owner", "username": USERNAME}
    if exp is not None:
        payload["exp"] = int(exp) if isinstance(exp, float) and exp < 1e18 else exp
    return jwt.encode({**payload, **claims}, "a test key that is long enough for HS256", algorithm="HS256")


@dataclass
class Cloud:
    """What the fake Enlighten and Entrez answer, and every request they got (path, headers, body)."""

    token: str = ""
    login_status: int = 200
    login_headers: dict[str, str] = field(default_factory=dict)  # sent with a login that is not a 200
    session_id: str | None = "session-42"
    token_statuses: list[int] = field(default_factory=list)  # answered first, one per token request
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    base: str = ""

    def count(self, path: str) -> int:
        return sum(1 for p, _, _ in self.requests if p == path)

    async def login(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers), await request.read()))
        if self.login_status != 200:
            message = {"message": "Invalid username or password"}
            return web.json_response(message, status=self.login_status, headers=self.login_headers)
        answer = {"message": "success"} | ({"session_id": self.session_id} if self.session_id else {})
        return web.json_response(answer)

    async def tokens(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers), await request.read()))
        if self.token_statuses:
            return web.Response(status=self.token_statuses.pop(0), text="busy")
        return web.Response(text=self.token)
