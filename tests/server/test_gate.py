"""The sidecar's limits on real sockets: a connection cap, a deadline for a request's head, header caps, and a
daemon that keeps polling while its API is flooded."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nutbridge.datalog.format import day_file
from nutbridge.server.app import ApiLimits, Sidecar, make_app
from tests.conftest import daemon_config
from tests.helpers import GUARD, free_port, until

LIMITS = ApiLimits(max_connections=5, head_timeout=0.5, keepalive_timeout=2.0)


@pytest.fixture
async def sidecar(tmp_path: Path) -> AsyncIterator[Sidecar]:
    async with Sidecar(make_app(tmp_path), "127.0.0.1", 0, limits=LIMITS) as running:
        yield running


async def ask(port: int, request: bytes = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n") -> bytes:
    """The first bytes of the answer to ``request`` on a new connection ("" when it was closed unanswered)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(4096), 10)
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


async def test_connections_over_the_cap_get_a_503_and_the_others_are_served(sidecar: Sidecar) -> None:
    idle = [await asyncio.open_connection("127.0.0.1", sidecar.port) for _ in range(LIMITS.max_connections)]
    gate = sidecar.gate
    assert gate is not None
    await until(lambda: gate.open == LIMITS.max_connections, GUARD)  # the gate has seen them
    refused = await ask(sidecar.port)
    assert refused.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 5" in refused
    assert gate.refused == 1
    _, writer = idle.pop()
    writer.close()
    await writer.wait_closed()
    await until(lambda: gate.open < LIMITS.max_connections, GUARD)  # the server has seen it go
    assert b'"status":"unhealthy"' in await ask(sidecar.port)  # served: /health of a server that polls nothing
    for _, writer in idle:
        writer.close()


async def test_a_head_that_trickles_in_is_cut_off_and_a_whole_one_is_not(sidecar: Sidecar) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.port)
    writer.write(b"GET /health HTTP/1.1\r\n")
    started = time.monotonic()
    closed = False
    try:
        while time.monotonic() - started < 10:  # a byte now and then, never the end of the head
            writer.write(b"X")
            await writer.drain()
            await asyncio.sleep(0.1)
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    if not closed:
        closed = await asyncio.wait_for(reader.read(), 5) == b""
    assert closed and sidecar.gate is not None and sidecar.gate.timed_out == 1
    writer.close()
    # a slow client that sends its whole head at once, then waits, is answered
    assert b'"status":"unhealthy"' in await ask(sidecar.port)  # /health without a poll: unhealthy, but answered


async def test_lines_and_headers_over_their_caps_are_refused(sidecar: Sidecar) -> None:
    many = b"".join(b"X-%d: y\r\n" % i for i in range(100))
    for request in (
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # the request line
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",  # one header
        b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n",  # too many headers
    ):
        status = (await ask(sidecar.port, request)).split(b" ")[1]
        assert status in (b"400", b"414", b"431"), request[:40]


def test_the_daemon_polls_on_while_its_api_is_flooded(tmp_path: Path) -> None:
    port = free_port()
    # a row per poll written at once, to count polls by
    extra = f'[datalog]\nfolder = "log"\nflush_interval = 0\n[api]\nlisten = "127.0.0.1:{port}"\nmax_connections = 20\n'
    toml = daemon_config(tmp_path, extra, poll_interval=0.2)
    daemon = subprocess.Popen([sys.executable, "-m", "nutbridge", "-c", str(toml)], stderr=subprocess.PIPE)
    flood: list[socket.socket] = []
    try:
        log = day_file(tmp_path / "log", dt.date.today())
        deadline = time.monotonic() + 30
        while not log.exists():
            assert time.monotonic() < deadline and daemon.poll() is None
            time.sleep(0.1)
        for _ in range(300):  # far more than the cap, each holding a connection without a request
            s = socket.create_connection(("127.0.0.1", port))
            flood.append(s)
        rows = len(log.read_text().splitlines())
        while len(log.read_text().splitlines()) < rows + 10:  # ten more polls while flooded
            assert time.monotonic() < deadline + 30 and daemon.poll() is None
            time.sleep(0.1)
        answers = []
        for s in flood[-50:]:
            s.settimeout(5)
            answers.append(s.recv(64))
        assert all(a.startswith(b"HTTP/1.1 503 ") for a in answers)  # the newest ones: over the cap
    finally:
        for s in flood:
            s.close()
        daemon.terminate()
        _, err = daemon.communicate(timeout=20)
    assert daemon.returncode == 0, err.decode()
    assert err.decode().count("the most it takes; refusing more") == 1  # once per flood


@pytest.mark.parametrize(("hard", "expected", "warned"), [(8192, 1256, False), (700, 700, True)])
def test_the_open_file_limit_is_raised_for_the_caps(hard: int, expected: int, warned: bool) -> None:
    code = (
        "import logging, resource; logging.basicConfig();"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, (512, {hard}));"
        "from nutbridge.limits import raise_open_files; print(raise_open_files(1000));"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [str(expected), str(expected)]
    assert ("lower api.max_connections or raise LimitNOFILE=" in done.stderr) is warned


def test_more_subscribers_than_connections_is_a_config_error(tmp_path: Path) -> None:
    toml = daemon_config(tmp_path, '[datalog]\nfolder = "log"\n[api]\nlisten = "127.0.0.1:1"\nmax_connections = 10\n'
                         "[pubsub]\nenabled = true\nmax_subscribers = 11\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "nutbridge", "-c", str(toml)], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 78 and "pubsub.max_subscribers (11) is more than the API takes" in done.stderr
