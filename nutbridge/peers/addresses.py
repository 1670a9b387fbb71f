"""Which addresses this node sends requests to: one rule for posted, gossiped and configured peers.

Every node of a solar network holds the key, so any one of them can put an address into every device list,
and every node then POSTs the key there each round and the election GETs from it. Without a rule, one node
makes the whole network knock on 127.0.0.1:22, a cloud's metadata service or a broadcast address. The rule:

- public unicast addresses are allowed;
- private, loopback, shared (100.64/10), unique-local and documentation ranges only where ``[peers]
  allow_addresses`` names them (a list of CIDR ranges, empty by default); IPv4-mapped IPv6 (``::ffff:127.0.0.1``)
  and 6to4 addresses are judged by the IPv4 address inside them;
- link-local, multicast, broadcast, unspecified and reserved addresses are always refused, whatever the list;
- a port below 1024 is refused unless it is 80, 443 or the network's ``peer_port``: a node is a web server, and
  the well-known ports below 1024 belong to other services (ssh, smtp, dns) that must never get the key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
WEB_PORTS = (80, 443)
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def split_address(address: str, default_port: int) -> tuple[str, int]:
    """(host, port) of a peer address; IPv6 literals come back without brackets."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default_port
    if address.count(":") == 1:
        host, port = address.split(":")
        return host, int(port) if port.isdigit() else default_port
    return address, default_port


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """The rule above, with the ranges ``allow`` lets in and the network's usual port."""

    allow: tuple[Network, ...] = ()
    peer_port: int = 80

    @classmethod
    def from_ranges(cls, ranges: Iterable[str], peer_port: int = 80) -> AddressPolicy:
        """From CIDR texts (ValueError for one that is not a range)."""
        return cls(tuple(ipaddress.ip_network(r, strict=False) for r in ranges), peer_port)

    def refusal(self, host: str, port: int) -> str | None:
        """Why ``host`` (an IP literal) at ``port`` is refused, or None when requests may go there."""
        try:
            ip: IP = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return f"{host} is not an IP address"
        if port < 1024 and port not in (*WEB_PORTS, self.peer_port):
            return f"port {port} is a well-known port of another service (below 1024 only 80, 443 and peer_port)"
        inner = embedded_ipv4(ip)
        reason = self._refusal(inner)
        return reason if inner == ip or reason is None else f"{ip} stands for {reason}"

    def _refusal(self, ip: IP) -> str | None:
        if ip.is_unspecified or ip.is_multicast or ip.is_link_local or (ip.version == 4 and ip.is_reserved):
            return f"{ip} is {kind(ip)}: never a peer"
        if any(ip in network for network in self.allow):
            return None
        if not ip.is_global or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local):
            return f"{ip} is {kind(ip)}: only where [peers] allow_addresses lists its range"
        return None


def embedded_ipv4(ip: IP) -> IP:
    """The IPv4 address an IPv4-mapped, 6to4 or NAT64 (64:ff9b::/96) IPv6 address stands for; else ``ip``."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped or ip.sixtofour:
            return ip.ipv4_mapped or ip.sixtofour  # type: ignore[return-value]
        if ip in NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def kind(ip: IP) -> str:
    """What an address is, in words a log reader knows."""
    for test, words in (
        (ip.is_unspecified, "unspecified"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_link_local, "link-local"),
        (ip == ipaddress.IPv4Address("255.255.255.255"), "the broadcast address"),
        (ip.version == 4 and ip.is_reserved, "a reserved address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_private, "a private address"),
    ):
        if test:
            return words
    return "not a public address"
