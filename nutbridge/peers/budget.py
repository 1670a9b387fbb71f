"""How often one sender may change the device list: a key holder must not be able to make a node rewrite its
list (up to 1 MiB, on an SD card) on every post.

Each sender address may make ``per_hour`` changes an hour (a new node, or an entry whose content, not only its
stamp, changed); an honest node makes one when it joins and one when its entry changes (it became point of
entry, it moved), so the default leaves it a wide margin. A node announcing itself again only restamps its
entry, which the list holds in memory, and never counts.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

WINDOW = 3600.0  # seconds
SENDERS = 4096  # senders remembered; the oldest are forgotten first


class ChangeBudget:
    """Changes per sender in the last hour, on the monotonic clock."""

    def __init__(self, per_hour: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.per_hour = per_hour
        self.monotonic = monotonic
        self._changes: dict[str, deque[float]] = {}  # sender -> times of its changes, oldest first

    def take(self, sender: str) -> float:
        """Count a change by ``sender``: 0 when it may make it, else the seconds until it may."""
        now = self.monotonic()
        times = self._changes.pop(sender, None) or deque()
        while times and now - times[0] >= WINDOW:
            times.popleft()
        wait = 0.0
        if len(times) >= self.per_hour:
            wait = WINDOW - (now - times[0])
        else:
            times.append(now)
        self._changes[sender] = times  # the newest last
        while len(self._changes) > SENDERS:
            del self._changes[next(iter(self._changes))]
        return wait
