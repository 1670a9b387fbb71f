"""The live snapshot: a sink that keeps the newest snapshot, and the last good one, for the API to answer from."""

from __future__ import annotations

from nutbridge.snapshot import Snapshot


class LiveSnapshot:
    """Holds what the monitor last said; the API reads it and never polls the device itself."""

    def __init__(self, interval: float) -> None:
        self.interval = interval  # the poll interval, to judge freshness
        self.latest: Snapshot | None = None
        self.last_good: Snapshot | None = None

    def __str__(self) -> str:
        return "live snapshot"

    async def update(self, snapshot: Snapshot) -> None:
        """Keep the snapshot (and it as the last good one when the poll answered)."""
        self.latest = snapshot
        if snapshot.ok:
            self.last_good = snapshot
