"""The JSON API against its own OpenAPI document, fuzzed by schemathesis over a real listener.

Every operation of the served ``/api/openapi.json`` gets schema-valid (positive) and schema-violating (negative)
requests, without the network key and with it (``Authorization: Bearer`` and ``X-Network-Key``) where the
document asks for it. Every answer must be no 5xx, a documented status code and content type whose body matches
the documented schema (errors included: a JSON object with the reason), every negative request refused, the key
enforced, and no file outside the data folder read or served. Deterministic (``derandomize``) and bounded.

The server runs in the test's event loop (``tests.server.test_api``'s fixture); schemathesis, which calls it with
``requests``, runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import collections
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import schemathesis
from hypothesis import given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from nutbridge.peers.devices import DeviceList
from nutbridge.server.app import make_app
from nutbridge.server.live import LiveSnapshot
from nutbridge.server.openapi import OPENAPI
from nutbridge.snapshot import Comms
from tests.conftest import TEST_POLICY
from tests.helpers.api import CONTROL_SECRET, KEY, Ticks, snapshot
from tests.helpers.schema import CONFORMANCE, validate

CREDENTIALS: dict[str, dict[str, str]] = {
    "nobody": {},
    "bearer": {"Authorization": f"Bearer {KEY}"},
    "x-network-key": {"X-Network-Key": KEY},
    "control-secret": {"Authorization": f"Bearer {CONTROL_SECRET}"},
}
SCHEMES = {"bearer": "bearer", "networkKey": "x-network-key", "controlSecret": "control-secret"}  # → CREDENTIALS
# Negative requests must be refused: a bad query or body (400), no key (401), a body over 64 KiB (413; the
# generator makes some)
CONFIG = {"checks": {"negative_data_rejection": {"expected-statuses": ["400", "401", "413"]}}}
EXAMPLES = 60  # per run; unauthenticated runs of a secured operation are all 401s and need fewer
UNAUTHENTICATED_EXAMPLES = 15


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in OPENAPI["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def runs() -> Iterator[Any]:
    for method, path, operation in operations():
        schemes = [SCHEMES[name] for requirement in operation.get("security", []) for name in requirement]
        inputs = "parameters" in operation or "requestBody" in operation
        for who in ["nobody", *schemes]:
            # a negative request breaks a parameter, the body or the key: not the key where the test sends it
            negatable = inputs or (bool(schemes) and who == "nobody")
            for mode in [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if negatable else [GenerationMode.POSITIVE]:
                yield pytest.param(method, path, who, mode, id=f"{method} {path} {mode.value} {who}")


class Opened:
    """The files opened under ``root`` but outside ``allowed`` while watching.

    An audit hook (PEP 578) sees every open() and os.open() of the process, in any thread. Hooks cannot be
    removed, so one is added for the whole run and does nothing unless a watch is on.
    """

    hooked: ClassVar[bool] = False
    watching: ClassVar[Opened | None] = None

    def __init__(self, root: Path, *allowed: Path) -> None:
        self.root, self.allowed = str(root), [str(p) for p in allowed]
        self.outside: list[str] = []

    def __enter__(self) -> Opened:
        if not Opened.hooked:
            sys.addaudithook(Opened.hook)
            Opened.hooked = True
        Opened.watching = self
        return self

    def __exit__(self, *exc: object) -> None:
        Opened.watching = None

    @staticmethod
    def hook(event: str, args: tuple[Any, ...]) -> None:
        watch = Opened.watching
        if watch is None or event != "open" or not isinstance(args[0], str | bytes | os.PathLike):
            return
        path = os.path.abspath(os.fsdecode(args[0]))
        inside = path == watch.root or any(path == p or path.startswith(p + os.sep) for p in watch.allowed)
        if path.startswith(watch.root + os.sep) and not inside:
            watch.outside.append(path)


def fuzz(
    url: str, method: str, path: str, who: str, mode: GenerationMode, secrets: list[str]
) -> collections.Counter[int]:
    """Run one operation's examples (in a worker thread); the status codes it answered."""
    schema: OpenApiSchema = schemathesis.openapi.from_url(
        f"{url}/api/openapi.json", config=schemathesis.Config.from_dict(CONFIG)
    )
    schema.validate()  # a valid OpenAPI 3.0 document, first of all
    operation = schema[path][method]
    credentials = CREDENTIALS[who]
    checks = [not_a_server_error, *CONFORMANCE]
    if mode is GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)
    if credentials:
        checks.append(ignored_auth)  # and the key is enforced: without it, or with a wrong one, a 401
    statuses: collections.Counter[int] = collections.Counter()
    examples = EXAMPLES if credentials or "security" not in operation.definition.raw else UNAUTHENTICATED_EXAMPLES

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None)
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case[Any]) -> None:
        if credentials:  # the key alone: a generated (wrong) Authorization would win over X-Network-Key
            for name in ("Authorization", "X-Network-Key"):
                case.headers.pop(name, None)
        response = case.call_and_validate(base_url=url, headers=credentials, checks=checks)
        statuses[response.status_code] += 1
        body = response.content.decode("utf-8", "replace")
        assert not [s for s in secrets if s in body], "a file from outside the day files was served"

    check()
    return statuses


@pytest.mark.parametrize(("method", "path", "who", "mode"), list(runs()))
async def test_every_operation_answers_as_documented(
    api: tuple[str, LiveSnapshot],
    tmp_path: Path,
    method: str,
    path: str,
    who: str,
    mode: GenerationMode,
) -> None:
    url, live = api
    await live.update(snapshot())  # fresh: /api/status and /health answer 200 (their 503s: the test below)
    data = tmp_path / "data"
    secrets = [(tmp_path / "secret.csv").read_text(), (data / "tracerData-old.csv.bak").read_text()]
    devices = tmp_path / "devices.json"
    with Opened(tmp_path, data, devices, devices.with_name(f".{devices.name}.nutbridge.tmp")) as opened:
        statuses = await asyncio.to_thread(fuzz, url, method, path, who, mode, secrets)
    assert opened.outside == []
    secure = "security" in OPENAPI["paths"][path][method.lower()]
    if secure and who == "nobody":
        assert set(statuses) == {401}, statuses
    elif mode is GenerationMode.POSITIVE:
        assert statuses[200], statuses  # the route's work was fuzzed, not only its refusals


def test_the_document_lists_exactly_the_json_routes(data_dir: Path, tmp_path: Path) -> None:
    app = make_app(data_dir, devices=DeviceList(tmp_path / "devices.json", policy=TEST_POLICY), network_key=KEY)
    routes = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD" and not r.resource.canonical.endswith(".php")
    }  # the v1 and v2 PHP routes are Solar Protocol's, documented by it
    assert routes == {(method, path) for method, path, _ in operations()}


async def test_every_state_of_the_server_answers_as_documented(
    api: tuple[str, LiveSnapshot],
    tmp_path: Path,
    ticks: Ticks,
) -> None:
    """What fuzzing a fresh server never meets: no poll yet, comms failing or lost, a stale poll, a device list
    that cannot be read. 503s included, each as the document says."""
    url, live = api
    assert await validate(url, "/api/status") == 503
    assert await validate(url, "/health") == 503
    for state, later, status, health in (
        (snapshot(), 0, 200, 200),
        (snapshot(Comms.FAILING), 0, 200, 200),
        (snapshot(Comms.LOST), 0, 200, 503),
        (snapshot(), 3600, 200, 503),  # the last good poll an hour old
    ):
        await live.update(state)
        ticks.now += later
        assert await validate(url, "/api/status") == status, state
        assert await validate(url, "/health") == health, state
    (tmp_path / "devices.json").write_text("{torn")
    key = {"Authorization": f"Bearer {KEY}"}
    assert await validate(url, "/api/devices", headers=key) == 503
    device = {"mac": "b8:27:eb:00:00:01", "ip": "192.0.2.5", "stamp": time.time(), "name": "One"}
    assert await validate(url, "/api/devices", "POST", headers=key, body=device, media_type="application/json") == 503
    big = device | {"name": "x" * 65536}  # refused by the body limit, in aiohttp's plain text
    assert await validate(url, "/api/devices", "POST", headers=key, body=big, media_type="application/json") == 413
