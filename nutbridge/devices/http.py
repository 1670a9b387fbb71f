"""What the HTTP sources (the Enphase gateway, the pyPowerwall proxy) share: one httpx client, made when first
needed and closed with the source or when its link is dropped; the async context; one GET with its errors
translated; HTTP 429 honoured; JSON numbers read strictly.

A GET must complete, body included, within the source's timeout: httpx's own timeouts bound each read, so a
body that trickles in a byte at a time would otherwise hold the poll until the monitor's deadline. A device
that answers 429 Too Many Requests is not asked again before its Retry-After (see ``nutbridge.ratelimit``);
a poll meanwhile fails at once, without a request, saying how long the wait still is.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any, Self

import httpx

from nutbridge.errors import SourceError
from nutbridge.ratelimit import RateLimits, shown

SOURCE = "source"  # the one key of a source's rate limit


class RateLimited(SourceError):
    """The device answered HTTP 429 and is not asked again before its Retry-After."""


def reason(exc: BaseException) -> str:
    """A failed request in a few words: httpx's own text, or the error beneath it (a reset comes as a ReadError
    without a message, over anyio's, over the ConnectionResetError that says what happened)."""
    text, cause = str(exc), exc.__cause__ or exc.__context__
    for _ in range(5):
        if text or cause is None:
            break
        text, cause = str(cause), cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {text or 'connection failed'}"


def num(value: object) -> float | None:
    """A finite JSON number as a float; anything else (null, text, true, NaN) is None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class HttpSource:
    """A source on one HTTP client; subclasses say how the client is made.

    ``clock`` (monotonic seconds) times the waits a 429 asks for."""

    def __init__(self, timeout: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._limits = RateLimits(clock)

    @property
    def timeout(self) -> float:
        return self._timeout

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client for good."""
        await self.drop_link()

    async def drop_link(self) -> None:
        """Close the client; the next request opens a new one."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self.make_client()
        return self._client

    def make_client(self) -> httpx.AsyncClient:
        raise NotImplementedError

    async def request(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET ``path``: the whole answer within the timeout, or SourceError; RateLimited after a 429, and
        while its Retry-After lasts, without asking."""
        wait = self._limits.remaining(SOURCE)
        if wait > 0:
            raise RateLimited(f"{self}: rate-limited for {shown(wait)} more after HTTP 429; not asked until then")
        try:
            async with asyncio.timeout(self._timeout):
                response = await self.client().get(path, **kwargs)
        except (httpx.TimeoutException, TimeoutError):
            await self.drop_link()  # a late answer must not be read as the next one
            raise SourceError(f"{self}: {path}: no answer within {self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            await self.drop_link()  # a reset or a TLS failure: the next request starts on a new connection
            raise SourceError(f"{self}: {path}: {reason(exc)}") from exc
        if response.status_code == 429:
            wait = self._limits.limit(SOURCE, response.headers.get("Retry-After"))
            raise RateLimited(
                f"{self}: {path}: HTTP 429 Too Many Requests: rate-limited for {shown(wait)}; not asked until then"
            )
        return response
