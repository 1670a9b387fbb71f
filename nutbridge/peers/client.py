"""HTTP to the other nodes of the network: one session, a timeout per request, answers read up to a cap.

A node's address is what the device list holds (``192.0.2.7``, ``192.0.2.7:8080``, ``[2001:db8::7]:8080``)
or a configured seed, which may also be a host name; without a port it is ``default_port``.

A peer that answers 429 Too Many Requests is not asked again before its Retry-After (``nutbridge.ratelimit``):
until then every request to it fails at once with RateLimited, without a connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Self

import aiohttp

from nutbridge.errors import NutbridgeError
from nutbridge.ratelimit import RateLimits, shown

MAX_ANSWER = 1024 * 1024  # a device list of 1,000 nodes with full logs fits
CONNECTIONS = 16


class PeerError(NutbridgeError):
    """A peer could not be reached, or its answer was too large."""


class RateLimited(PeerError):
    """A peer answered HTTP 429 and is not asked again before its Retry-After."""


def split_address(address: str, default_port: int) -> tuple[str, int]:
    """(host, port) of a peer address; IPv6 literals come back without brackets."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default_port
    if address.count(":") == 1:
        host, port = address.split(":")
        return host, int(port) if port.isdigit() else default_port
    return address, default_port


def base_url(address: str, default_port: int) -> str:
    """``http://host:port`` for a peer address."""
    host, port = split_address(address, default_port)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class PeerClient:
    """Requests to peers while entered; every failure is a PeerError with a short reason. ``clock`` (monotonic
    seconds) times the waits a 429 asks for."""

    def __init__(self, *, timeout: float, default_port: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.default_port = default_port
        self._session: aiohttp.ClientSession | None = None
        self._limits = RateLimits(clock)

    def rate_limited(self, address: str) -> float:
        """Seconds until ``address`` may be asked again after its 429; 0 when it may be now."""
        return self._limits.remaining(address)

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            connector=aiohttp.TCPConnector(limit=CONNECTIONS),
            headers={"User-Agent": "nutbridge"},
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def get(self, address: str, path: str, params: Mapping[str, str]) -> tuple[int, bytes]:
        """GET ``path`` with a query: (status, body)."""
        return await self._request("GET", address, path, params=params)

    async def post_form(self, address: str, path: str, fields: Mapping[str, str]) -> tuple[int, bytes]:
        """POST a URL-encoded form (v1's own client forgot the encoding): (status, body)."""
        return await self._request("POST", address, path, data=dict(fields))

    async def _request(self, method: str, address: str, path: str, **kwargs: object) -> tuple[int, bytes]:
        assert self._session is not None, "use PeerClient as an async context manager"
        wait = self._limits.remaining(address)
        if wait > 0:
            raise RateLimited(f"{address}: rate-limited for {shown(wait)} more after HTTP 429; not asked until then")
        url = base_url(address, self.default_port) + path
        try:
            async with self._session.request(method, url, allow_redirects=False, **kwargs) as response:  # type: ignore[arg-type]
                if response.status == 429:
                    self._limits.limit(address, response.headers.get("Retry-After"))
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > MAX_ANSWER:
                        raise PeerError(f"{address}: answer over {MAX_ANSWER // 1024} KiB")
                return response.status, bytes(body)
        except TimeoutError:
            raise PeerError(f"{address}: no answer within {self.timeout:g} s") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise PeerError(f"{address}: {type(exc).__name__}: {exc}") from exc
