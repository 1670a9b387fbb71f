"""What the HTTP sources (the Enphase gateway, the pyPowerwall proxy) share: one httpx client, made when first
needed and closed with the source or when its link is dropped; the async context; JSON numbers read strictly."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Self

import httpx

from nutbridge.nut.variables import Var


def num(value: object) -> float | None:
    """A finite JSON number as a float; anything else (null, text, true, NaN) is None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class HttpSource:
    """A source on one HTTP client; subclasses say how the client is made and what ``TABLE`` they fill."""

    TABLE: ClassVar[Sequence[Var]]

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    @property
    def table(self) -> Sequence[Var]:
        return self.TABLE

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
