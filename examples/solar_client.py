#!/usr/bin/env python3
"""A small client for a nutbridge (or Solar Protocol v1) node, with the standard library only.

python3 examples/solar_client.py http://127.0.0.1:8080            # newest values and today's PV voltage
python3 examples/solar_client.py http://127.0.0.1:8080 --health   # exit 0 when the node is fresh
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

V1 = "/api/v1/chargecontroller.php"


def get(base: str, path: str) -> tuple[int, str]:
    """Status and body of one GET."""
    try:
        with urllib.request.urlopen(base.rstrip("/") + path, timeout=10) as response:  # noqa: S310 - http(s) checked
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    base = argv[0]
    if not base.startswith(("http://", "https://")):
        print("the node's address starts with http:// or https://", file=sys.stderr)
        return 2
    if "--health" in argv:
        status, body = get(base, "/health")
        print(json.loads(body).get("reason", "ok"))
        return 0 if status == 200 else 1
    _, newest = get(base, f"{V1}?line=0")  # v1: the newest row as a JSON object
    row = json.loads(newest) if newest else {}
    print(f"newest row {row.get('datetime')}: PV {row.get('PV voltage')} V, battery {row.get('battery percentage')}")
    _, series = get(base, f"{V1}?value=PV-voltage&duration=1")  # v1: timestamp → value, header first
    values = {k: v for k, v in json.loads(series or "{}").items() if k != "datetime"}
    print(f"today: {len(values)} PV voltage readings")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
