"""What several test modules use: a free port, the nutbridge command, a wait for a condition. The modules beside
this one hold each area's fakes and fixtures' pieces (a gateway, a proxy, a broker, peers, v1's day files…), so
no test module imports another (tests/test_layout.py keeps it so); pytest fixtures live in the conftest files."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Callable

NUTBRIDGE = [sys.executable, "-m", "nutbridge"]
GUARD = 30.0  # s: a bound against a hang, never a timing assertion (machines are noisy)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``python -m nutbridge ARGS``, its output captured as text."""
    return subprocess.run(
        [*NUTBRIDGE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
    )


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait for the server side to have done something (a server running in this event loop); ``within`` is a
    guard against a hang."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the server's state, which has no event to wait for
            await asyncio.sleep(0.005)
