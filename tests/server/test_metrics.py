"""/metrics in Prometheus' text format (read back with prometheus_client's own parser), /stats and /stats/clear."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from nutbridge.model import Reading
from nutbridge.server.app import Sidecar, make_app
from nutbridge.server.live import LiveSnapshot
from nutbridge.snapshot import Comms, Snapshot

SECRET = "the operator's [control] secret"
BEARER = {"Authorization": f"Bearer {SECRET}"}


@pytest.fixture
async def server(data_dir: Path) -> AsyncIterator[tuple[str, LiveSnapshot]]:
    live = LiveSnapshot(interval=10)
    async with Sidecar(make_app(data_dir, live=live, control_secret=SECRET), "127.0.0.1", 0) as sidecar:
        yield f"http://127.0.0.1:{sidecar.port}", live


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, r.headers["Content-Type"], await r.text()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_are_the_live_snapshot_in_prometheus_text_format(server: tuple[str, LiveSnapshot]) -> None:
    url, live = server
    _, _, text = await get(f"{url}/metrics")
    before = samples(text)  # before the first poll: counters, comms all 0, no readings
    assert before[("nutbridge_polls_total", ())] == 0
    assert ("nutbridge_pv_power_watts", ()) not in before
    reading = Reading(time=1.0, battery_charge=87.0, pv_power=123.5, battery_voltage=13.2)
    variables = MappingProxyType({"ups.status": "OL CHRG", "battery.charge": "87", "battery.runtime": "3600"})
    await live.update(Snapshot(seq=41, time=1.0, comms=Comms.FAILING, variables={}, failures_total=3))
    await live.update(Snapshot(seq=42, time=2.0, comms=Comms.OK, reading=reading, variables=variables,
                               failures_total=3))  # fmt: skip
    await get(f"{url}/api/status")
    await get(f"{url}/no/such/route")
    status, content_type, text = await get(f"{url}/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    found = samples(text)
    assert found[("nutbridge_polls_total", ())] == 42
    assert found[("nutbridge_poll_failures_total", ())] == 3
    assert found[("nutbridge_comms", (("state", "ok"),))] == 1 and found[("nutbridge_comms", (("state", "lost"),))] == 0
    assert found[("nutbridge_pv_power_watts", ())] == 123.5
    assert found[("nutbridge_battery_charge_percent", ())] == 87
    assert found[("nutbridge_nut_variable", (("variable", "battery.runtime"),))] == 3600
    assert ("nutbridge_nut_variable", (("variable", "ups.status"),)) not in found  # text is no gauge
    assert found[("nutbridge_http_requests_total", (("route", "/api/status"), ("status", "200")))] == 1
    assert found[("nutbridge_http_requests_total", (("route", "unmatched"), ("status", "404")))] == 1


async def test_stats_count_since_the_last_clear(server: tuple[str, LiveSnapshot]) -> None:
    url, live = server
    await live.update(Snapshot(seq=5, time=1.0, comms=Comms.LOST, variables={}, failures_total=2))
    for _ in range(3):
        await get(f"{url}/api/v1/chargecontroller.php?line=0")

    async def stats() -> Any:
        async with aiohttp.ClientSession() as s, s.get(f"{url}/stats") as r:
            return await r.json()

    first = await stats()
    assert (first["polls"], first["failures"], first["comms"]) == (5, 2, "lost")
    assert first["requests"] == 3 and first["cache_hits"] + first["cache_misses"] >= 3
    async with aiohttp.ClientSession() as s, s.post(f"{url}/stats/clear", headers=BEARER) as r:
        assert r.status == 200
    await live.update(Snapshot(seq=6, time=2.0, comms=Comms.LOST, variables={}, failures_total=3))
    again = await stats()
    assert (again["polls"], again["failures"], again["requests"]) == (1, 1, 1)  # the clear: counted once answered


async def test_stats_clear_is_a_post_with_the_secret_from_this_origin(server: tuple[str, LiveSnapshot]) -> None:
    """Anyone could reset the counters: a GET (a link, an image on any page) or a POST from any page."""
    url, _ = server
    clear = f"{url}/stats/clear"

    async def requests() -> int:
        async with aiohttp.ClientSession() as s, s.get(f"{url}/stats") as r:
            return int((await r.json())["requests"])

    async with aiohttp.ClientSession() as s:
        async with s.get(clear, headers=BEARER) as r:
            assert r.status == 405
        for kw in ({}, {"headers": {"Authorization": "Bearer wrong"}}, {"data": {"token": "wrong"}},
                   {"params": {"token": SECRET}}):  # fmt: skip
            async with s.post(clear, **kw) as r:  # type: ignore[arg-type]
                assert r.status == 401, kw
                assert "[control] secret" in (await r.json())["error"]
        for origin in ("http://evil.example", "null", f"{url.replace('127.0.0.1', '127.0.0.2')}"):
            async with s.post(clear, headers=BEARER | {"Origin": origin}) as r:
                assert r.status == 403, origin
        assert await requests() == 8  # none of those eight cleared the counters
        for kw in ({"headers": BEARER | {"Origin": url}}, {"data": {"token": SECRET}}):
            async with s.post(clear, **kw) as r:  # type: ignore[arg-type]
                assert (r.status, await r.json()) == (200, {"cleared": True}), kw
            assert await requests() == 1  # the clear itself


async def test_stats_clear_without_a_secret_says_which_key_to_set(data_dir: Path) -> None:
    async with Sidecar(make_app(data_dir), "127.0.0.1", 0) as sidecar:
        url = f"http://127.0.0.1:{sidecar.port}/stats/clear"
        async with aiohttp.ClientSession() as s, s.post(url, headers=BEARER) as r:
            assert r.status == 403
            assert "set [control] secret" in (await r.json())["error"]
