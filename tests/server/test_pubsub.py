"""The PiCloud-compatible pub/sub hub over a real listener, with real aiohttp WebSocket clients on loopback."""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import json
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from nutbridge.config_sections import PubSubConfig
from nutbridge.errors import SourceError
from nutbridge.model import Reading
from nutbridge.server import legacy, pubsub
from nutbridge.server.app import Sidecar, make_app
from nutbridge.server.pubsub import MAX_EVENTS, PubSubHub
from nutbridge.server.pubsub_wire import go_json, go_string, go_time
from nutbridge.snapshot import Comms, Snapshot
from tests.helpers import GUARD, until

KEY = "correct horse battery staple"
CONFIG = PubSubConfig(api_key=KEY, info_interval=0.5)
FRAME = re.compile(
    r'\{"action":"publish","event":"(?P<event>[^"]*)","data":(?P<data>"(?:[^"\\]|\\.)*"),'
    r'"created_at":"(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{0,8}[1-9])?Z)"\}\n'
)
WSError = aiohttp.WSServerHandshakeError


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, config: PubSubConfig = CONFIG, **kw: Any) -> AsyncIterator[tuple[str, PubSubHub]]:
    """The sidecar's app with the hub's routes, listening on an ephemeral loopback port."""
    hub = PubSubHub(config, **kw)
    app = make_app(tmp_path, pubsub=hub)  # the routes go in before the Sidecar starts: aiohttp freezes them then
    async with Sidecar(app, "127.0.0.1", 0) as sidecar:
        yield f"http://127.0.0.1:{sidecar.port}", hub


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, PubSubHub]]:
    async with serve(tmp_path) as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def who(name: str | None = "tester", key: str | None = KEY) -> dict[str, str]:
    headers = {}
    if name is not None:
        headers["X-API-Client-Name"] = name
    if key is not None:
        headers["X-API-Key"] = key
    return headers


def counts(hub: PubSubHub) -> dict[str, int]:
    return {s["name"]: len(s["connections"]) for s in hub.info()["subscriptions"]}


async def subscribed(hub: PubSubHub, ws: aiohttp.ClientWebSocketResponse, *events: str) -> None:
    """Subscribe to ``events`` (none subscribed yet) and wait until the hub has taken it."""
    before = counts(hub)
    for event in events:
        await ws.send_str(json.dumps({"action": "subscribe", "event": event}))
    await until(lambda: all(counts(hub).get(e, 0) == before.get(e, 0) + 1 for e in events))


async def received(ws: aiohttp.ClientWebSocketResponse) -> re.Match[str]:
    """The next frame, which must be a publication exactly as PiCloud writes it."""
    text = await ws.receive_str(timeout=3)
    match = FRAME.fullmatch(text)
    assert match, text
    return match


async def closed(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read to the end; the server's close code."""
    async with asyncio.timeout(3):
        async for _ in ws:
            pass
    return ws.close_code


async def post(session: aiohttp.ClientSession, url: str, body: Any, **kw: Any) -> tuple[int, str]:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    async with session.post(f"{url}/publish", data=data, **({"headers": who()} | kw)) as r:
        return r.status, await r.text()


def snapshot(seq: int, comms: Comms = Comms.OK, status: str = "OL CHRG") -> Snapshot:
    t = time.time()
    if comms is not Comms.OK:
        return Snapshot(seq=seq, time=t, comms=comms, variables=MappingProxyType({}), error=SourceError("no answer"))
    reading = Reading(time=t, battery_charge=71.0, pv_power=88.5)
    variables = MappingProxyType({"ups.status": status, "battery.charge": "71"})
    return Snapshot(seq=seq, time=t, comms=comms, reading=reading, variables=variables)


def test_go_encoding() -> None:
    assert go_time(0) == "1970-01-01T00:00:00Z"
    assert go_time(1_500_000_000_120_000_000) == "2017-07-14T02:40:00.12Z"  # trailing zeros cut, as Go's
    assert go_time(1_500_000_000_000_000_001) == "2017-07-14T02:40:00.000000001Z"
    assert go_string('<a&b>\u2028"\\\n\t\x01é\ud800') == '"\\u003ca\\u0026b\\u003e\\u2028\\"\\\\\\n\\t\\u0001é\ufffd"'
    assert go_json({"b": [1, None, True], "a": {}}) == '{"b":[1,null,true],"a":{}}'  # in order, compact


async def test_subscribe_unsubscribe_and_unsubscribe_all(
    server: tuple[str, PubSubHub], session: aiohttp.ClientSession
) -> None:
    url, hub = server
    async with session.ws_connect(f"{url}/subscribe", headers=who()) as ws:
        await subscribed(hub, ws, "a", "b")
        before = time.time()
        assert await post(session, url, {"event": "a", "data": "<hi> & é"}) == (201, "")
        match = await received(ws)
        expected = '{"action":"publish","event":"a","data":"\\u003chi\\u003e \\u0026 é","created_at":"%s"}\n'
        assert match[0] == expected % match["at"]  # byte for byte, with Go's escapes and json.Encoder's newline
        stamp = calendar.timegm(time.strptime(match["at"][:19], "%Y-%m-%dT%H:%M:%S"))
        assert before - 1 <= stamp <= time.time() + 1  # UTC, now
        await ws.send_str('{"action":"subscribe","event":"a"}')  # twice is once
        await ws.send_str('{"action":"unsubscribe","event":"a"}')
        await ws.send_str('{"action":"dance","event":"b"}')  # other actions are ignored, as PiCloud does
        await until(lambda: [s["name"] for s in hub.info()["subscriptions"]] == ["b"])
        await post(session, url, {"event": "a", "data": "gone"})
        await post(session, url, {"event": "b", "data": "still"})
        assert json.loads((await received(ws))[0])["data"] == "still"
        await ws.send_str('{"action":"unsubscribe:all"}')
        await until(lambda: hub.info()["subscriptions"] == [])  # empty events are pruned
        await post(session, url, {"event": "b", "data": "gone"})
        await subscribed(hub, ws, "c")
        await post(session, url, {"event": "c", "data": "next"})
        assert json.loads((await received(ws))[0])["data"] == "next"  # nothing for b came before it
        # the old /connect design: one socket publishes too (PiCloud's Python client)
        await ws.send_str('{"action":"publish","event":"c","data":"self"}')
        assert json.loads((await received(ws))[0])["data"] == "self"


async def test_publish_over_http_status_codes(server: tuple[str, PubSubHub], session: aiohttp.ClientSession) -> None:
    url, hub = server
    async with session.ws_connect(f"{url}/subscribe?clientName=x&apiKey={KEY}") as ws:  # query, as browsers must
        await subscribed(hub, ws, "e")
        assert await post(session, url, {"event": "e", "data": "one"}) == (201, "")
        assert await post(session, url, {"event": "e", "data": None}) == (201, "")  # null: "", as Go decodes it
        assert await post(session, url, {"event": "e"}) == (201, "")
        query = {"apiKey": KEY, "clientName": "q"}
        assert await post(session, url, {"event": "e", "data": "q"}, headers={}, params=query) == (201, "")
        datas = [json.loads((await received(ws))[0])["data"] for _ in range(4)]
        assert datas == ["one", "", "", "q"]
    assert await post(session, url, {"data": "x"}) == (400, "Bad request\n")
    assert await post(session, url, {"event": "", "data": "x"}) == (400, "Bad request\n")
    for bad in ("{nope", "", "[]", '{"event":"e"} trailing', '{"event":"e","x":NaN}', b"\xff"):
        status, text = await post(session, url, bad)
        assert status == 400 and text.startswith("Bad request: not"), (bad, text)  # PiCloud: 500
    assert await post(session, url, {"event": "e", "data": 5}) == (400, "Bad request: data must be a string\n")
    assert await post(session, url, {"event": "e", "data": "x"}, headers=who(key=None)) == (401, "Invalid API Key\n")
    assert await post(session, url, {"event": "e", "data": "x"}, headers=who(key="wrong")) == (401, "Invalid API Key\n")
    assert await post(session, url, {"event": "e"}, headers=who(name=None)) == (401, "Invalid client name\n")
    assert (await post(session, url, {"event": "e", "data": "x" * 70_000}))[0] == 413  # the sidecar's body cap
    async with session.put(f"{url}/publish", headers=who()) as r:
        assert r.status == 405 and set(r.headers["Allow"].split(",")) == {"GET", "POST", "OPTIONS"}
    async with session.options(f"{url}/subscribe") as r:
        assert r.status == 200 and r.headers["Allow"] == "GET, OPTIONS"
    async with session.get(f"{url}/subscribe", headers=who()) as r:
        assert r.status == 400  # not an upgrade
    assert hub.published == 4


async def test_publish_socket(server: tuple[str, PubSubHub], session: aiohttp.ClientSession) -> None:
    url, hub = server
    async with (
        session.ws_connect(f"{url}/subscribe", headers=who("sub")) as sub,
        session.ws_connect(f"{url}/publish", headers=who("pub")) as pub,
    ):
        await subscribed(hub, sub, "e")
        forged = {"event": "e", "data": "x", "action": "evil", "created_at": "2000-01-01T00:00:00Z"}
        await pub.send_str(json.dumps(forged))
        match = await received(sub)  # the action and the time are the server's
        assert match["data"] == '"x"' and not match["at"].startswith("2000")
        await pub.send_str('{"event":"e","data":"y"}')
        assert (await received(sub))["data"] == '"y"'
        with pytest.raises(TimeoutError):
            await pub.receive(timeout=0.2)  # a publisher's socket gets nothing (not /info's pushes either)
        for bad, code in (("{nope", 1003), ('{"event":""}', 1003), ('{"event":"e","data":{}}', 1003)):
            async with session.ws_connect(f"{url}/publish", headers=who()) as other:
                await other.send_str(bad)
                assert await closed(other) == code, bad
        async with session.ws_connect(f"{url}/publish", headers=who()) as other:
            await other.send_bytes(b'{"event":"e"}')
            assert await closed(other) == 1003  # text frames only
        async with session.ws_connect(f"{url}/subscribe", headers=who()) as other:
            await other.send_str('{"action":"subscribe","event":7}')
            assert await closed(other) == 1003


async def test_handshake_refusals(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    async with serve(tmp_path, replace(CONFIG, max_subscribers=2)) as (url, hub):
        for path in ("/subscribe", "/publish", "/info"):
            for headers in (who(key=None), who(key="correct horse battery stapler"), who(key=KEY.upper())):
                with pytest.raises(WSError) as refused:
                    await session.ws_connect(f"{url}{path}", headers=headers)
                assert refused.value.status == 401, (path, headers)
        for path in ("/subscribe", "/publish", "/connect"):
            with pytest.raises(WSError) as refused:
                await session.ws_connect(f"{url}{path}", headers=who(name=None))
            assert refused.value.status == 401
        async with (
            session.ws_connect(f"{url}/info", headers=who(name=None)),
            session.ws_connect(f"{url}/connect", headers=who()),
        ):
            with pytest.raises(WSError) as refused:
                await session.ws_connect(f"{url}/subscribe", headers=who())
            assert refused.value.status == 503 and hub.sockets == 2  # the cap, before the upgrade
        await until(lambda: hub.sockets == 0)
        async with session.ws_connect(f"{url}/subscribe", headers=who()):
            pass


async def test_key_is_compared_in_constant_time(
    server: tuple[str, PubSubHub], session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    calls: list[tuple[str, str | None]] = []
    real = legacy.key_matches
    assert vars(pubsub)["key_matches"] is legacy.key_matches  # hmac.compare_digest, shared with the v1 API

    def spy(given: str, expected: str | None) -> bool:
        calls.append((given, expected))
        return real(given, expected)

    monkeypatch.setattr(pubsub, "key_matches", spy)
    assert (await post(session, url, {"event": "e"}))[0] == 201
    assert (await post(session, url, {"event": "e"}, headers=who(key="nope")))[0] == 401
    with pytest.raises(WSError):
        await session.ws_connect(f"{url}/info?apiKey=also", headers={})
    assert calls == [(KEY, KEY), ("nope", KEY), ("also", KEY)]


async def test_a_hub_without_a_key_refuses_other_sites(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    async with serve(tmp_path, replace(CONFIG, api_key=None)) as (url, hub):
        assert await post(session, url, {"event": "e"}, headers=who(key=None)) == (201, "")
        assert await post(session, url, {"event": "e"}, headers=who(key="any")) == (201, "")  # PiCloud: 401
        host = url.removeprefix("http://")
        with pytest.raises(WSError) as refused:
            await session.ws_connect(f"{url}/subscribe", headers=who(key=None) | {"Origin": "https://evil.example"})
        assert refused.value.status == 403  # a page of another site in this machine's browser
        async with session.ws_connect(f"{url}/info", headers={"Origin": f"http://{host}"}) as info:
            assert (await info.receive_json())["all_connections"] == []
        assert hub.published == 2


async def test_info_pushes(server: tuple[str, PubSubHub], session: aiohttp.ClientSession) -> None:
    url, hub = server
    async with session.ws_connect(f"{url}/info", headers={"X-API-Key": KEY}) as info:  # no client name needed
        first = await info.receive_str(timeout=GUARD)  # at once (PiCloud: after 5 s)
        assert first.endswith("}\n") and json.loads(first) == {
            "subscriptions": [],
            "all_connections": [],  # PiCloud: null
            "created_at": json.loads(first)["created_at"],
        }
        async with (
            session.ws_connect(f"{url}/subscribe", headers=who("kitchen")) as a,
            session.ws_connect(f"{url}/publish", headers=who("panel")),
        ):
            await subscribed(hub, a, "zeta", "alpha")
            body = json.loads(await info.receive_str(timeout=GUARD))  # a later tick: it holds the subscriptions
            assert list(body) == ["subscriptions", "all_connections", "created_at"]
            assert [s["name"] for s in body["subscriptions"]] == ["alpha", "zeta"]
            kitchen = body["subscriptions"][0]["connections"][0]
            assert list(kitchen) == ["client_name", "ip_address", "connected_at"]
            assert kitchen["client_name"] == "kitchen" and re.fullmatch(r"127\.0\.0\.1:\d+", kitchen["ip_address"])
            assert [c["client_name"] for c in body["all_connections"]] == ["kitchen", "panel"]  # publishers too
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", kitchen["connected_at"])
        await until(lambda: hub.sockets == 1)
        while body["all_connections"]:  # a push or two may have been under way
            body = json.loads(await info.receive_str(timeout=2))
        assert body["subscriptions"] == []


async def test_update_publishes_reading_and_status(
    server: tuple[str, PubSubHub], session: aiohttp.ClientSession
) -> None:
    url, hub = server
    await hub.update(snapshot(1))  # nobody listens: nothing is built, the status is still tracked
    async with session.ws_connect(f"{url}/subscribe", headers=who()) as ws:
        await subscribed(hub, ws, "reading", "status")
        await hub.update(snapshot(2))  # the same status: a reading only
        await hub.update(snapshot(3, Comms.FAILING))
        await hub.update(snapshot(4, Comms.FAILING))
        await hub.update(snapshot(5, status="OB DISCHRG"))
        got = []
        for _ in range(6):
            match = await received(ws)
            got.append((match["event"], json.loads(json.loads(match[0])["data"])))  # data: JSON text in a string
        assert [(event, data["seq"]) for event, data in got] == [
            ("reading", 2),
            ("reading", 3),
            ("status", 3),
            ("reading", 4),
            ("reading", 5),
            ("status", 5),
        ]
        reading = got[0][1]
        assert reading["comms"] == "ok" and reading["error"] is None
        assert reading["variables"] == {"ups.status": "OL CHRG", "battery.charge": "71"}
        assert reading["reading"]["pv_power"] == 88.5 and reading["reading"]["battery_charge"] == 71.0
        assert got[1][1]["reading"] is None and got[1][1]["error"] == "no answer"
        assert got[2][1] == {
            "seq": 3,
            "time": got[2][1]["time"],
            "comms": "failing",
            "ups.status": "OL CHRG",  # a failed poll has no variables: the last status stands
            "error": "no answer",
            "previous": {"comms": "ok", "ups.status": "OL CHRG"},
        }
        assert got[5][1]["ups.status"] == "OB DISCHRG" and got[5][1]["previous"]["comms"] == "failing"


async def test_a_slow_subscriber_is_closed_and_stalls_nobody(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    async with (
        serve(tmp_path, replace(CONFIG, queue=4, queue_bytes=2**30)) as (url, hub),  # the message cap alone
        session.ws_connect(f"{url}/subscribe", headers=who("slow")) as slow,
        session.ws_connect(f"{url}/subscribe", headers=who("fast")) as fast,
    ):
        await subscribed(hub, slow, "big", "reading")
        await subscribed(hub, fast, "big", "reading")
        padding = "x" * 200_000
        sent = 0
        while hub.slow_closed == 0:  # the slow one never reads: its socket buffers fill, then its queue
            assert sent < 500, "the slow subscriber was never closed"
            hub.publish("big", f"{sent} {padding}")
            match = await received(fast)
            assert json.loads(match[0])["data"].startswith(f"{sent} ")  # every one, in order, at once
            sent += 1
        await hub.update(snapshot(1))  # the poll does not wait for anyone
        assert (await received(fast))["event"] == "reading"
        count = 0
        async with asyncio.timeout(5):
            async for message in slow:  # it reads at last: what was sent before it fell behind, then the close
                assert message.type is aiohttp.WSMsgType.TEXT and message.data.startswith('{"action":"publish"')
                count += 1
        assert slow.close_code == 1013 and 0 < count < sent
        await until(lambda: hub.subscribers == 1)
        assert [s["name"] for s in hub.info()["subscriptions"]] == ["big", "reading"]
        assert not fast.closed


def small_receive_buffer(addr_info: Any) -> socket.socket:
    """A client socket whose kernel takes little before it stops the sender (no autotuning: a fixed size)."""
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    return sock


async def test_a_subscriber_that_never_reads_is_closed_at_its_byte_cap(
    tmp_path: Path, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Frames of 390 KB (65,000 '<', escaped as Go does): over queue_bytes long before the 64-message cap."""
    assert CONFIG.queue == 64 and CONFIG.queue_bytes == 2**20  # the defaults
    data = "<" * 65_000
    async with (
        serve(tmp_path) as (url, hub),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(socket_factory=small_receive_buffer)) as stalling,
        stalling.ws_connect(f"{url}/subscribe", headers=who("stalled")) as stalled,
    ):
        await subscribed(hub, stalled, "big")
        sent = 0
        while hub.slow_closed == 0:  # our socket's send buffer in the kernel fills first, then the queue
            assert sent < CONFIG.queue, "not closed before the message cap"
            assert await post(session, url, {"event": "big", "data": data}) == (201, "")
            sent += 1
        assert hub.queued == 0  # its frames were dropped with the decision, before any close handshake
        assert "stalled (127.0.0.1:" in caplog.text and "fell 1048576 bytes behind; closed" in caplog.text
        count = 0
        async with asyncio.timeout(5):
            async for message in stalled:  # it reads at last: what reached its socket, then the close
                match = FRAME.fullmatch(message.data)
                assert match is not None and json.loads(match["data"]) == data
                count += 1
        assert stalled.close_code == 1013 and 0 < count < sent
        await until(lambda: hub.subscribers == 0)


async def raw_request(port: int, head: str, body: str = "") -> tuple[int, str]:
    """Send ``head`` (its Host and Origin exactly as given) over a plain socket: the answer's status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        length = f"Content-Length: {len(body)}\r\n" if body else ""
        writer.write(f"{head}\r\n{length}\r\n{body}".encode())
        answer = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)).decode()
        size = re.search(r"(?im)^content-length: (\d+)", answer)
        text = (await reader.readexactly(int(size[1]))).decode() if size else ""
        return int(answer.split()[1]), text
    finally:
        writer.close()
        await writer.wait_closed()


def upgrade(host: str, origin: str | None = None, path: str = "/subscribe?clientName=x") -> str:
    """A browser's WebSocket handshake for ``path``, sent to ``host``."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade"]
    lines += ["Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]
    return "\r\n".join(lines + ([f"Origin: {origin}"] if origin else []))


async def test_a_hub_without_a_key_answers_only_to_loopback_names(tmp_path: Path) -> None:
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 sends Host and Origin
    evil.example:PORT, which match each other; only a Host that names the loopback is taken."""
    async with serve(tmp_path, replace(CONFIG, api_key=None)) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        refused = (403, "Forbidden: a hub without a key answers only to localhost or a loopback address\n")
        for host in (
            f"evil.example:{port}",
            "evil.example",
            f"127.0.0.1.evil.example:{port}",
            "localhost.evil.example",
        ):
            assert await raw_request(port, upgrade(host, f"http://{host}")) == refused, host
            assert await raw_request(port, upgrade(host)) == refused, host  # no Origin (not a browser) changes nothing
        for path in ("/info", "/publish?clientName=x"):
            assert await raw_request(port, upgrade(f"evil.example:{port}", path=path)) == refused, path
        post_head = (
            f"POST /publish?clientName=x HTTP/1.1\r\nHost: evil.example:{port}\r\nOrigin: http://evil.example:{port}"
        )
        assert await raw_request(port, post_head, '{"event":"e","data":"x"}') == refused
        for host in (f"127.0.0.1:{port}", "127.0.0.1", f"localhost:{port}", "LocalHost", f"[::1]:{port}", "127.1.2.3"):
            assert (await raw_request(port, upgrade(host, f"http://{host}")))[0] == 101, host
        cross_site = await raw_request(port, upgrade(f"localhost:{port}", "http://evil.example"))
        assert cross_site == (403, "Forbidden: cross-site request to a hub without a key\n")
    async with serve(tmp_path) as (url, _):  # with a key (behind a proxy, say) any name will do: the key is needed
        port = int(url.rsplit(":", 1)[1])
        keyed = upgrade(f"solar.example:{port}", path=f"/subscribe?clientName=x&apiKey={quote(KEY)}")
        assert (await raw_request(port, keyed))[0] == 101


async def test_a_frame_over_the_limit_is_closed_with_1009(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    async with serve(tmp_path, replace(CONFIG, max_frame=1024)) as (url, hub):
        for path in ("/publish", "/subscribe"):
            async with session.ws_connect(f"{url}{path}", headers=who()) as ws:
                await ws.send_str(json.dumps({"event": "e", "data": "x" * 1024}))
                assert await closed(ws) == 1009
        async with session.ws_connect(f"{url}/publish", headers=who()) as ws:
            await ws.send_str(json.dumps({"event": "e", "data": "x" * 990}))  # under it: fine
            await until(lambda: hub.published == 1)
        assert await post(session, url, {"event": "e", "data": "x" * 1024}) == (
            413,
            "Request Entity Too Large: at most 1024 bytes\n",
        )


async def test_too_many_subscriptions_are_a_policy_violation(
    server: tuple[str, PubSubHub], session: aiohttp.ClientSession
) -> None:
    url, _ = server
    async with session.ws_connect(f"{url}/subscribe", headers=who()) as ws:
        for i in range(MAX_EVENTS):
            await ws.send_str(json.dumps({"action": "subscribe", "event": f"e{i}"}))
        await ws.send_str(json.dumps({"action": "subscribe", "event": "e0"}))  # again: no more
        await ws.send_str(json.dumps({"action": "subscribe", "event": "one too many"}))
        assert await closed(ws) == 1008


async def test_keepalive_drops_a_peer_that_does_not_answer_pings(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    async with (
        serve(tmp_path, heartbeat=0.2) as (url, hub),
        session.ws_connect(f"{url}/subscribe", headers=who("alive")) as alive,
        session.ws_connect(f"{url}/subscribe", headers=who("dead"), autoping=False) as dead,
    ):
        assert hub.sockets == 2
        reader = asyncio.create_task(alive.receive())  # answers pings (aiohttp does, while it reads)
        await until(lambda: hub.sockets == 1)
        await asyncio.sleep(0.5)  # several pings later
        assert [c["client_name"] for c in hub.info()["all_connections"]] == ["alive"]
        assert (await dead.receive(timeout=1)).type is aiohttp.WSMsgType.PING
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def test_stopping_the_server_closes_sockets_with_1001(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    async with serve(tmp_path) as (url, _):
        sub = await session.ws_connect(f"{url}/subscribe", headers=who())
        info = await session.ws_connect(f"{url}/info", headers=who())
        readers = [asyncio.create_task(closed(ws)) for ws in (sub, info)]  # clients that read answer the close
    # the server's stop has sent the close: the readers end on it, not on a timeout of theirs
    assert await asyncio.gather(*readers) == [1001, 1001]


async def test_the_daemon_publishes_every_poll_to_subscribers(tmp_path: Path) -> None:
    import sys

    from tests.conftest import daemon_config
    from tests.helpers import free_port

    port = free_port()
    toml = daemon_config(
        tmp_path, f'[datalog]\nfolder = "log"\n[api]\nlisten = "127.0.0.1:{port}"\n[pubsub]\napi_key = "{KEY}"\n'
    )
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nutbridge", "-c", str(toml), stderr=asyncio.subprocess.PIPE
    )
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(int(GUARD / 0.1)):  # until it listens; a guard against a hang
                with contextlib.suppress(aiohttp.ClientError):
                    ws = await s.ws_connect(f"http://127.0.0.1:{port}/subscribe", headers=who())
                    break
                await asyncio.sleep(0.1)
            async with ws:
                await ws.send_str('{"action":"subscribe","event":"reading"}')
                frame = await asyncio.wait_for(ws.receive_str(), 10)
        found = FRAME.fullmatch(frame)
        assert found is not None and found["event"] == "reading", frame
        data = json.loads(json.loads(found["data"]))
        assert data["comms"] == "ok" and data["variables"]["ups.status"].startswith("OL")
    finally:
        daemon.terminate()
        _, err = await daemon.communicate()
    assert daemon.returncode == 0, err.decode()
