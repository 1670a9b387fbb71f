"""HTTP to the other nodes of the network: one session, a timeout per request, answers read up to a cap.

A node's address is what the device list holds (``192.0.2.7``, ``192.0.2.7:8080``, ``[2001:db8::7]:8080``)
or a configured seed, which may also be a host name; without a port it is ``default_port``. Every request
passes the address policy (peers.addresses) first, a host name's resolved addresses too: whatever a device
list says, nothing goes to loopback, link-local, broadcast or another refused address.

A peer that answers 429 Too Many Requests is not asked again before its Retry-After (``nutbridge.ratelimit``):
until then every request to it fails at once with RateLimited, without a connection.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from nutbridge.errors import NutbridgeError
from nutbridge.peers.addresses import AddressPolicy, split_address
from nutbridge.peers.devices import MAX_LIST
from nutbridge.ratelimit import RateLimits, shown

MAX_ANSWER = MAX_LIST  # the largest answer is a device list, which never grows past its cap
CONNECTIONS = 16


class PeerError(NutbridgeError):
    """A peer could not be reached, or its answer was too large."""


class RateLimited(PeerError):
    """A peer answered HTTP 429 and is not asked again before its Retry-After."""


class AddressRefused(PeerError):
    """The address policy refuses the peer's address: no request was made."""


def base_url(address: str, default_port: int) -> str:
    """``http://host:port`` for a peer address."""
    host, port = split_address(address, default_port)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class FilteringResolver(AbstractResolver):
    """aiohttp's resolver for host names (configured seeds), keeping only the addresses the policy allows, so a
    name that resolves (or is rebound) to a refused address is never connected to."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver) -> None:
        self.policy = policy
        self.inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        allowed = [r for r in results if self.policy.refusal(r["host"], r["port"] or port) is None]
        if not allowed:
            reasons = {self.policy.refusal(r["host"], r["port"] or port) for r in results}
            raise OSError(
                errno.EACCES, f"{host} resolves only to refused addresses ({'; '.join(sorted(map(str, reasons)))})"
            )
        return allowed

    async def close(self) -> None:
        await self.inner.close()


class PeerClient:
    """Requests to peers while entered; every failure is a PeerError with a short reason. ``policy`` says where
    requests may go (default: public addresses only); ``clock`` (monotonic seconds) times the waits a 429 asks
    for."""

    def __init__(
        self,
        *,
        timeout: float,
        default_port: int,
        policy: AddressPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.default_port = default_port
        self.policy = policy or AddressPolicy(peer_port=default_port)
        self._session: aiohttp.ClientSession | None = None
        self._limits = RateLimits(clock)

    def rate_limited(self, address: str) -> float:
        """Seconds until ``address`` may be asked again after its 429; 0 when it may be now."""
        return self._limits.remaining(address)

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            connector=aiohttp.TCPConnector(
                limit=CONNECTIONS, resolver=FilteringResolver(self.policy, DefaultResolver())
            ),
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
        host, port = split_address(address, self.default_port)
        if is_ip(host) and (reason := self.policy.refusal(host, port)):
            raise AddressRefused(f"{address}: not asked: {reason}")
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


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IP literal (a host name is checked when it is resolved)."""
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True
