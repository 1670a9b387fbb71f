"""A fake pyPowerwall proxy over the recorded answers in test-fixtures/powerwall/, and a hand-moved clock."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).parents[2]


FIXTURES = ROOT / "test-fixtures" / "powerwall"


def fixture(name: str) -> dict[str, Any]:
    """One fixture file: the proxy's answer for each path ("_note" says what it shows)."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    data.pop("_note")
    return data


@dataclass(frozen=True)
class Answer:
    body: str
    status: int = 200  # pyPowerwall answers every GET with 200, whatever the body
    content_type: str = "application/json"


class FakeProxy:
    """pyPowerwall's proxy as nutbridge sees it: a path answers what ``answers`` holds, or hangs."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.hang: set[str] = set()
        self.hits: Counter[str] = Counter()
        self.peers: set[object] = set()
        self.release = asyncio.Event()
        self.url = ""

    def play(self, name: str) -> None:
        for path, body in fixture(name).items():
            self.answers[path] = Answer(json.dumps(body))

    def change(self, path: str, change: Mapping[str, Any]) -> None:
        """Change some keys of one answer (a "a.b" key changes b inside a)."""
        body = json.loads(self.answers[path].body)
        for key, value in change.items():
            *outer, last = key.split(".")
            target = body
            for part in outer:
                target = target[part]
            target[last] = value
        self.answers[path] = Answer(json.dumps(body))

    async def handle(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        if request.transport is not None:
            self.peers.add(request.transport.get_extra_info("peername"))
        if request.path in self.hang:
            await self.release.wait()
        answer = self.answers.get(request.path, Answer("Not Found", content_type="text/plain"))
        return web.Response(
            status=answer.status, body=answer.body.encode(), headers={"Content-Type": answer.content_type}
        )


@contextlib.asynccontextmanager
async def serving(*fixtures: str) -> AsyncIterator[FakeProxy]:
    """The proxy answering ``fixtures`` (played in order) on an ephemeral loopback port."""
    fake = FakeProxy()
    for name in fixtures:
        fake.play(name)
    app = web.Application()
    app.router.add_get("/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        fake.release.set()
        await runner.cleanup()


class Clock:
    """Monotonic seconds a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
