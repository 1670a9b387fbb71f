"""The sink boundary: each sink runs in its own task behind a bounded queue, with a timeout per update.

Each sink declares what it needs of the polls (``wants``): only the newest state (the port file, the live
snapshot, the feeds, systemd: one slot, a newer snapshot replaces one not yet started on), or every poll in
order (the data log, the pub/sub hub, the printer: a bounded queue of EVERY_POLL_QUEUE). Its runner's queue
follows from that declaration and from nothing else.

A sink that raises, hangs or falls behind never delays the poll: its errors are logged once per change,
a slow one drops the oldest snapshots it has not started on, and the monitor never awaits a sink. A sink that
holds work back (``Buffering``: the batched data log) is flushed by its runner when its window ends, also while
no snapshot arrives, and when the runner stops.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import ClassVar, Protocol, runtime_checkable

from nutbridge.errors import NutbridgeError
from nutbridge.snapshot import Snapshot

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
EVERY_POLL_QUEUE = 64  # snapshots an every-poll sink may lag before the oldest are dropped (with a warning)


class Wants(enum.Enum):
    """What a sink needs of the polls; its runner's queue is sized from it."""

    NEWEST = "only the newest state"  # one slot: a snapshot not yet started on is replaced by a newer one
    EVERY = "every poll, in order"  # a bounded queue: a short stall loses nothing

    @property
    def queue_size(self) -> int:
        return 1 if self is Wants.NEWEST else EVERY_POLL_QUEUE


class Sink(Protocol):
    """Told about every poll it keeps up with, in order; never polls the device itself. ``wants`` (a class
    attribute) says whether it needs every poll or only the newest."""

    wants: ClassVar[Wants]

    def __str__(self) -> str: ...

    async def update(self, snapshot: Snapshot) -> None: ...


@runtime_checkable
class Buffering(Protocol):
    """A sink that holds work back to do it in one go: ``due`` says in how many seconds ``flush`` is due
    (None: nothing held)."""

    def due(self) -> float | None: ...

    async def flush(self) -> None: ...


class SinkRunner:
    """Feeds one sink from a bounded queue in its own task (``run``); the queue's size is what the sink
    ``wants`` (``queue_size`` overrides it, for tests that make a sink fall behind on purpose)."""

    def __init__(self, sink: Sink, *, queue_size: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sink = sink
        self.timeout = timeout
        self.dropped = 0
        size = sink.wants.queue_size if queue_size is None else queue_size
        self._queue: collections.deque[Snapshot] = collections.deque(maxlen=size)
        self._wake = asyncio.Event()  # set when there is work or the runner should stop
        self._progress = asyncio.Event()  # set each time a snapshot has been handled
        self._closing = False
        self._done = 0  # seq of the last snapshot handled
        self._ok = 0  # seq of the last snapshot handled without error
        self._error: str | None = None

    def __str__(self) -> str:
        return str(self.sink)

    def offer(self, snapshot: Snapshot) -> None:
        """Queue ``snapshot`` without waiting; a full queue drops its oldest entry."""
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
            # A one-slot sink wants only the newest state (the port file at sub-second polling skips by
            # design); a queued one losing entries is worth a warning.
            if self._queue.maxlen == 1:
                log.debug("%s: snapshot %d replaced by a newer one", self.sink, self._queue[0].seq)
            elif self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("%s is falling behind; %d snapshot(s) skipped so far", self.sink, self.dropped)
        self._queue.append(snapshot)
        self._wake.set()

    def close(self) -> None:
        """Finish what is queued, then stop ``run``."""
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        """Hand each queued snapshot to the sink until ``close``; flush a buffering sink when due and at the end
        (also when the task is cancelled, so a clean stop loses nothing held)."""
        sink = self.sink if isinstance(self.sink, Buffering) else None
        try:
            while self._queue or not self._closing:
                if self._queue:
                    await self._deliver(self._queue.popleft())
                    continue
                self._wake.clear()
                due = sink.due() if sink else None
                if sink and due is not None and due <= 0:
                    await self._guarded(sink.flush)
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(due):  # None: wait for work only
                        await self._wake.wait()
        finally:
            if sink and sink.due() is not None:
                await self._guarded(sink.flush)

    async def _deliver(self, snapshot: Snapshot) -> None:
        try:
            if await self._guarded(lambda: self.sink.update(snapshot)):
                self._ok = snapshot.seq
        finally:
            self._done = snapshot.seq
            self._progress.set()

    async def _guarded(self, work: Callable[[], Awaitable[None]]) -> bool:
        """Run ``work`` within the timeout; True if it raised nothing. Errors are logged once per change."""
        try:
            async with asyncio.timeout(self.timeout):
                await work()
        except Exception as exc:  # the boundary: whatever a sink raises must not reach the poll loop
            message = describe(exc, self.timeout)
            if message != self._error:
                log.error("%s: %s", self.sink, message)
                self._error = message
            return False
        if self._error is not None:
            log.warning("%s works again", self.sink)
            self._error = None
        return True

    async def handled(self, seq: int) -> bool:
        """Wait until snapshot ``seq`` (or a later one) was handled; True if without error."""
        while self._done < seq:
            self._progress.clear()
            await self._progress.wait()
        return self._ok >= seq


def describe(exc: Exception, timeout: float) -> str:
    """One line for a sink's failure: our own errors speak for themselves, others are named."""
    if isinstance(exc, TimeoutError):
        return f"no update finished within {timeout:g} s"
    if isinstance(exc, NutbridgeError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
