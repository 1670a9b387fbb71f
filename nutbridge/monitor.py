"""The coordinator: the only place that knows about time. One poll, many sinks (HA's DataUpdateCoordinator).

Each poll retries with jittered exponential backoff (tenacity), but never past the poll's deadline, so a
dead device never delays the schedule. Comms loss is a state: logged once when it starts, once when it
ends, and told to every sink with each poll.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from nutbridge.errors import NutbridgeError, SourceError
from nutbridge.model import DeviceInfo, Reading

log = logging.getLogger(__name__)

# An attempt needs at least this much time left before the deadline to be worth starting.
MIN_ATTEMPT = 0.05
# The share of the interval a poll may use; the rest is for the sinks (the port-file write).
POLL_SHARE = 0.9


class Source(Protocol):
    """A device: ``read`` (re)connects as needed and returns one Reading, or raises SourceError."""

    info: DeviceInfo | None

    async def read(self) -> Reading: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Poll:
    """What one poll produced, as every sink sees it."""

    reading: Reading | None
    info: DeviceInfo | None
    error: str | None = None
    failures: int = 0  # consecutive failed polls; 0 after a success
    comms_ok: bool = True  # False once `nocomms_after` polls in a row have failed


class Sink(Protocol):
    """Told about every poll, in order; never polls the device itself."""

    async def update(self, poll: Poll) -> None: ...


class Monitor:
    """Polls ``source`` every ``interval`` seconds and tells ``sinks``."""

    def __init__(
        self,
        source: Source,
        sinks: Sequence[Sink],
        *,
        interval: float,
        nocomms_after: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.sinks = list(sinks)
        self.interval = interval
        self.nocomms_after = nocomms_after
        self.clock = clock
        self.failures = 0
        self.polls = 0
        self._failing_since: float | None = None
        self._sink_errors: dict[int, str] = {}

    async def read(self, deadline: float) -> Reading:
        """Read the source, retrying with backoff until ``deadline`` (a ``clock`` time)."""

        def out_of_time(state: RetryCallState) -> bool:
            return self.clock() + state.upcoming_sleep + MIN_ATTEMPT >= deadline

        retrying = AsyncRetrying(
            stop=out_of_time,
            wait=wait_exponential_jitter(multiplier=0.05, max=max(0.1, self.interval / 4), jitter=0.05),
            retry=retry_if_exception_type(SourceError),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    async with asyncio.timeout(max(MIN_ATTEMPT, deadline - self.clock())):
                        return await self.source.read()
                except TimeoutError:
                    self.source.close()  # the cancelled request may still answer: start clean
                    raise SourceError(f"{self.source}: no complete answer within the poll interval") from None
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def poll(self, deadline: float | None = None) -> Poll:
        """One poll, with retries inside the interval; updates and logs the comms state."""
        self.polls += 1
        start = self.clock()
        try:
            reading = await self.read(deadline or start + self.interval * POLL_SHARE)
        except SourceError as exc:
            return self._failed(str(exc))
        if self._failing_since is not None:
            log.warning(
                "contact with %s restored after %d failed poll(s) over %.1f s",
                self.source,
                self.failures,
                self.clock() - self._failing_since,
            )
        self.failures, self._failing_since = 0, None
        return Poll(reading=reading, info=self.source.info)

    def _failed(self, error: str) -> Poll:
        self.failures += 1
        if self.failures == 1:
            self._failing_since = self.clock()
        if self.failures == self.nocomms_after:
            log.error("lost contact: %s", error)
        elif self.failures < self.nocomms_after:
            log.info("poll failed (%d of %d before nocomms): %s", self.failures, self.nocomms_after, error)
        else:
            log.debug("still no contact: %s", error)
        return Poll(
            reading=None,
            info=None,
            error=error,
            failures=self.failures,
            comms_ok=self.failures < self.nocomms_after,
        )

    async def tell(self, poll: Poll) -> bool:
        """Tell every sink; a failing sink is logged once per new error and never stops the others."""
        ok = True
        for i, sink in enumerate(self.sinks):
            try:
                await sink.update(poll)
            except NutbridgeError as exc:
                ok = False
                if self._sink_errors.get(i) != str(exc):
                    log.error("%s", exc)
                    self._sink_errors[i] = str(exc)
            else:
                if self._sink_errors.pop(i, None) is not None:
                    log.warning("%s works again", sink)
        return ok

    async def once(self) -> bool:
        """One poll, told to the sinks; True when the device answered and every sink succeeded."""
        poll = await self.poll()
        return await self.tell(poll) and poll.reading is not None

    async def run(self) -> None:
        """Poll on a fixed schedule until cancelled; a slow cycle skips the slots it missed."""
        next_at = self.clock()
        while True:
            deadline = next_at + self.interval * POLL_SHARE
            await self.tell(await self.poll(deadline))
            next_at += self.interval
            now = self.clock()
            next_at = max(next_at, now)
            await asyncio.sleep(next_at - now)
