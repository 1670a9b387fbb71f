"""The device list under a flood from one node that holds the network key: how large the file gets on disk.

A node's sidecar (the daemon's own app, on loopback) takes, from one sender with the key, as fast as it answers:

1. ``--bloat`` posts of issue 16's finding 1: a new MAC each, a name of 64 astral-plane letters and a log of 256
   40-letter strings (123 KB stored each once JSON escapes them, 41 KB posted);
2. ``--full`` posts of entries as large as the entry cap lets in, each a new MAC (filling the list to its cap);
3. the same with a stamp of 1e300.

After each post it reads the file's size; it prints the largest, the final size, how many posts were taken and
refused, whether ``GET /api/devices`` still answers 200, and whether a new honest node is still taken. It runs
on whatever nutbridge is importable: ``PYTHONPATH=/path/to/old/tree`` measures another version.

Usage: .venv/bin/python -m bench.device_list_flood [--bloat 60] [--full 400]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession

from nutbridge.node import Node
from nutbridge.peers.devices import DeviceList
from nutbridge.server.app import Sidecar, make_app

KEY = "the flood bench's network key"
ASTRAL = "\U0001d400"
HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def form(mac: str, ip: str, name: str, log: str, stamp: str) -> bytes:
    return f"api_key={KEY}&stamp={stamp}&ip={ip}&mac={mac}&name={name}&tz=UTC&log={log}".encode()


def device_list(path: Path) -> DeviceList:
    try:  # a tree with the address policy: the documentation range the bench posts from is allowed
        from nutbridge.peers.addresses import AddressPolicy

        return DeviceList(path, policy=AddressPolicy.from_ranges(["192.0.2.0/24"]))
    except ImportError:
        return DeviceList(path)


async def flood(bloat: int, full: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="nutbridge-flood-"))
    devices = device_list(folder / "deviceList.json")
    app = make_app(folder, devices=devices, network_key=KEY, node=Node({"name": "honest"}))
    largest, taken, refused = 0, 0, 0
    async with Sidecar(app, "127.0.0.1", 0) as sidecar, ClientSession() as http:
        url = f"http://127.0.0.1:{sidecar.port}"

        async def post(body: bytes) -> str:
            nonlocal largest, taken, refused
            async with http.post(f"{url}/api/v1/api.php", data=body, headers=HEADERS) as answer:
                text = await answer.text()
            taken, refused = (taken + 1, refused) if text else (taken, refused + 1)
            if devices.path.exists():
                largest = max(largest, devices.path.stat().st_size)
            return text

        await post(form("02:00:00:00:00:01", "192.0.2.1", "Honest", "", repr(time.time())))
        started = time.perf_counter()
        big_log = ",".join([ASTRAL * 40] * 256)
        for n in range(bloat):
            await post(form(f"02:00:00:01:{n // 256:02x}:{n % 256:02x}", f"192.0.2.{n % 250 + 2}", ASTRAL * 64,
                            big_log, repr(time.time())))  # fmt: skip
        full_log = ",".join(["2026-12-07 10:00:00.123456"] * 240)
        for n in range(full):
            stamp = "1e300" if n % 2 else repr(time.time())
            await post(form(f"02:00:00:02:{n // 256:02x}:{n % 256:02x}", f"192.0.2.{n % 250 + 2}:{8000 + n}",
                            ASTRAL * 64, full_log, stamp))  # fmt: skip
        seconds = time.perf_counter() - started
        async with http.get(f"{url}/api/devices", headers={"X-Network-Key": KEY}) as answer:
            listing = answer.status
        newcomer = await post(form("02:00:00:00:00:02", "192.0.2.250", "Newcomer", "", repr(time.time())))
    final = devices.path.stat().st_size
    posts = 1 + bloat + full + 1
    print(
        f"{posts} posts in {seconds:.1f} s ({(bloat + full) / seconds:.0f} a second): {taken} taken, {refused} refused"
    )
    print(f"device list on disk: largest {largest:,} bytes, final {final:,} bytes")
    print(f"GET /api/devices after the flood: HTTP {listing}; a new honest node afterwards: "
          f"{'taken' if 'Newcomer' in newcomer else 'refused'}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bloat", type=int, default=60)
    parser.add_argument("--full", type=int, default=400)
    args = parser.parse_args()
    asyncio.run(flood(args.bloat, args.full))


if __name__ == "__main__":
    main()
