"""The live snapshot: a sink that keeps the newest snapshot, and the last good one, for the API to answer from."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from nutbridge.sinks import Wants
from nutbridge.snapshot import Snapshot


class LiveSnapshot:
    """Holds what the monitor last said; the API reads it and never polls the device itself.

    Ages are taken on the monotonic clock, when each snapshot arrives: a wall clock stepped by NTP (a Pi that
    booted days behind) makes no fresh reading stale and no stale one fresh.
    """

    wants: ClassVar[Wants] = Wants.NEWEST

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval  # the poll interval, to judge freshness
        self.latest: Snapshot | None = None
        self.last_good: Snapshot | None = None
        self.clock = clock
        self._good_at: float | None = None  # monotonic, when the last good snapshot arrived

    def __str__(self) -> str:
        return "live snapshot"

    async def update(self, snapshot: Snapshot) -> None:
        """Keep the snapshot (and it as the last good one when the poll answered)."""
        self.latest = snapshot
        if snapshot.ok:
            self.last_good = snapshot
            self._good_at = self.clock()

    def age(self) -> float | None:
        """Seconds since the last good snapshot arrived (monotonic), or None before the first one."""
        return None if self._good_at is None else max(0.0, self.clock() - self._good_at)
