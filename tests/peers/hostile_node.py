"""A node that holds the network key and attacks the others (test_peer_network.py runs it in a namespace).

It is not nutbridge: a small aiohttp program that speaks the v1 wire format and lies. Every ``--every``
seconds it posts to each ``--target`` (v1's api.php form, with the key):

- bloat: a new MAC each time, a name of 64 astral-plane letters and a log of 256 such 40-letter entries;
- entries at refused addresses: loopback, link-local, unspecified, multicast, broadcast, and the other nodes'
  own addresses at ports of other services (22, 25);
- its two personas with a stamp of 1e300: ``liar`` (port A: /api/election answers impossible numbers) and
  ``v1`` (port B, no time zone: /api/election is 404, v1's ``value=datetime`` answers year 1).

Its answer to a post (the gossip other nodes learn from) names the same refused addresses and bloated entries.
Each round appends a line to ``--rounds`` so the test can wait for the attack to have happened.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, web

ASTRAL = "\U0001d400"
LIAR_MAC, V1_MAC = "02:00:00:00:06:01", "02:00:00:00:06:02"


def refused_addresses(targets: list[str]) -> list[str]:
    hosts = [t.rsplit(":", 1)[0] for t in targets]
    return [
        "127.0.0.1:8080", "[::1]:8080", "[::ffff:127.0.0.1]:8080", "0.0.0.0:8080", "169.254.169.254",
        "[fe80::1]:8080", "224.0.0.1", "255.255.255.255", "[ff02::1]:8080",
        *(f"{h}:22" for h in hosts), *(f"{h}:25" for h in hosts),
    ]  # fmt: skip


def entries(me: str, targets: list[str], round_number: int) -> list[dict[str, str]]:
    """Everything it says, as device-list entries (stamps in the far future)."""
    host = me.rsplit(":", 1)[0]
    port = int(me.rsplit(":", 1)[1])
    said = [
        {"mac": LIAR_MAC, "ip": f"{host}:{port}", "name": "liar", "tz": "UTC"},
        {"mac": V1_MAC, "ip": f"{host}:{port + 1}", "name": "v1 liar", "tz": ""},
    ]
    for n, address in enumerate(refused_addresses(targets)):
        said.append({"mac": f"02:00:00:00:07:{n:02x}", "ip": address, "name": f"trap {n}", "tz": "UTC"})
    bloat = ",".join([ASTRAL * 40] * 256)
    said.append({"mac": f"02:00:00:08:{round_number // 256 % 256:02x}:{round_number % 256:02x}",
                 "ip": f"{host}:{port + 2}", "name": ASTRAL * 64, "tz": "UTC", "log": bloat})  # fmt: skip
    return [{"log": "", **e, "time stamp": "1e300"} for e in said]


def v1_form(key: str, entry: dict[str, str]) -> bytes:
    """As v1 builds it: by hand, values as they are."""
    fields = {"api_key": key, "stamp": entry["time stamp"], "ip": entry["ip"], "mac": entry["mac"],
              "name": entry["name"], "tz": entry["tz"], "log": entry["log"]}  # fmt: skip
    return "&".join(f"{k}={v}" for k, v in fields.items()).encode()


def apps(me: str, targets: list[str]) -> tuple[web.Application, web.Application]:
    async def gossip(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(entries(me, targets, int(time.time())))

    async def impossible(request: web.Request) -> web.Response:
        return web.json_response({"mac": LIAR_MAC, "point_of_entry": True, "holder": LIAR_MAC,
                                  "scaled_wattage": 1e308, "battery_charge": 100, "reading_age": -1e300})  # fmt: skip

    async def v1_values(request: web.Request) -> web.Response:
        value = request.query.get("value", "")
        answer = {"scaled-wattage": "1000", "datetime": "0001-01-01 00:00:00", "battery-percentage": "1"}.get(value)
        return web.Response(text=answer or "")

    liar = web.Application()
    liar.router.add_post("/api/v1/api.php", gossip)
    liar.router.add_get("/api/election", impossible)
    v1 = web.Application()
    v1.router.add_post("/api/v1/api.php", gossip)
    v1.router.add_get("/api/v1/chargecontroller.php", v1_values)
    return liar, v1


async def attack(me: str, key: str, targets: list[str], every: float, rounds: Path) -> None:
    liar, v1 = apps(me, targets)
    host, port = me.rsplit(":", 1)[0], int(me.rsplit(":", 1)[1])
    runners = []
    for app, at in ((liar, port), (v1, port + 1)):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, at).start()
        runners.append(runner)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with ClientSession(timeout=ClientTimeout(total=5)) as http:
        for n in range(100_000):  # bounded: the test stops it long before
            for target in targets:
                for entry in entries(me, targets, n):
                    try:
                        async with http.post(f"http://{target}/api/v1/api.php", data=v1_form(key, entry),
                                             headers=headers) as answer:  # fmt: skip
                            await answer.read()
                    except (OSError, TimeoutError, ValueError) as exc:
                        print(f"post to {target}: {exc!r}", flush=True)
            with rounds.open("a") as f:
                f.write(json.dumps({"round": n}) + "\n")
            await asyncio.sleep(every)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--me", required=True, help="HOST:PORT the liar listens on (the v1 persona on PORT+1)")
    parser.add_argument("--key", required=True)
    parser.add_argument("--target", action="append", default=[])
    parser.add_argument("--every", type=float, default=0.5)
    parser.add_argument("--rounds", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(attack(args.me, args.key, args.target, args.every, args.rounds))


if __name__ == "__main__":
    main()
