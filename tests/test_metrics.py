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
from tests.test_legacy import data_dir  # noqa: F401 - the same day files


@pytest.fixture
async def server(data_dir: Path) -> AsyncIterator[tuple[str, LiveSnapshot]]:  # noqa: F811
    live = LiveSnapshot(interval=10)
    async with Sidecar(make_app(data_dir, live=live), "127.0.0.1", 0) as sidecar:
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
    async with aiohttp.ClientSession() as s, s.post(f"{url}/stats/clear") as r:
        assert r.status == 200
    await live.update(Snapshot(seq=6, time=2.0, comms=Comms.LOST, variables={}, failures_total=3))
    again = await stats()
    assert (again["polls"], again["failures"], again["requests"]) == (1, 1, 1)  # the clear: counted once answered
