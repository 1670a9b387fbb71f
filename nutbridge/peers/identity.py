"""Who this node says it is to its peers: MAC, the address they reach it at, name and time zone.

v1 reads wlan0's MAC and asks a web service for its public IP. Here the MAC comes from ``[peers] mac``, the
named ``interface``, or the first interface with a real hardware address; the address from
``[peers] public_ip`` (v1's STATIC_HOST_IP, for a node behind a tunnel or proxy), else the local address the
kernel would use toward the first peer: no packet is sent and nothing outside the network is asked.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

from nutbridge.errors import ConfigError
from nutbridge.node import MAC
from nutbridge.peers.addresses import split_address
from nutbridge.peers.entry import NAME, address

SYS_NET = Path("/sys/class/net")
NO_MAC = "00:00:00:00:00:00"


@dataclass(frozen=True, slots=True)
class Identity:
    """This node as its announcements describe it; ``ip`` is None until it is found from a peer's address."""

    mac: str
    name: str
    tz: str
    ip: str | None
    port: int  # the port this node's API listens on
    peer_port: int  # the port the network's nodes listen on when an address names none

    def announced_ip(self, toward: str) -> str:
        """The address to announce: ``public_ip``, or the local address toward the peer ``toward``, with this
        node's port added when it is not the network's usual one (as v1 appends its httpPort)."""
        ip = self.ip or local_address_toward(split_address(toward, self.peer_port)[0])
        if self.ip is None and self.port != self.peer_port:
            ip = f"[{ip}]:{self.port}" if ":" in ip else f"{ip}:{self.port}"
        return address(ip)


def local_address_toward(host: str) -> str:
    """The source address the kernel picks for ``host`` (a UDP connect sends nothing)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((host, 9))
        return str(probe.getsockname()[0])


def interface_mac(interface: str | None, sys_net: Path = SYS_NET) -> str:
    """The MAC of ``interface``, or of the first interface (by name) with one that is not all zeros."""
    names = [interface] if interface else sorted(p.name for p in sys_net.iterdir()) if sys_net.is_dir() else []
    for name in names:
        try:
            mac = (sys_net / name / "address").read_text().strip().lower()
        except OSError:
            continue
        if MAC.match(mac) and mac != NO_MAC:
            return mac
    where = f"interface {interface}" if interface else f"any interface in {sys_net}"
    raise ConfigError(f"no MAC address found for {where}; set peers.mac")


def safe_name(name: str) -> str:
    """The node's name in the characters the device list accepts (v1 keeps letters, digits, _ and space)."""
    cleaned = re.sub(r"[^\w .,()-]", "", name).strip()[:64]
    if not NAME.match(cleaned):
        raise ConfigError(f"node name {name!r} has no letters or digits to announce; set node.name")
    return cleaned
