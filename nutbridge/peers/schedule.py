"""The rounds of the peer tasks: a job every ``interval`` seconds on the monotonic clock, surviving its errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nutbridge.peers.entry import DeviceError

log = logging.getLogger(__name__)


async def every(interval: float, job: Callable[[], Awaitable[None]], what: str, after: Callable[[], None]) -> None:
    """Run ``job`` now and every ``interval`` seconds until cancelled; ``after`` follows each run.

    A late round is not made up for (rounds never bunch after a stall); a failing one is logged and the next
    comes on time: a full disk or a bug in one round must not end the peer tasks.
    """
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        try:
            await job()
        except DeviceError as exc:
            log.warning("%s: %s", what, exc)
        except Exception:
            log.exception("%s failed", what)
        after()
        due = max(due + interval, loop.time())
        await asyncio.sleep(due - loop.time())
