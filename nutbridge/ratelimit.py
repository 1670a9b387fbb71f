"""HTTP 429 Too Many Requests: how long a server's Retry-After asks us to wait, and who is not asked until then.

A gateway, a proxy or a peer that answers 429 is not asked again before its Retry-After has passed: delay
seconds (``120``) or an HTTP date (``Wed, 21 Oct 2026 07:28:00 GMT``), at most an hour (a typo or a hostile
server must not silence a device for a day), and a minute when the header is missing or unreadable. The wait
runs on the monotonic clock, so a clock stepped by NTP neither shortens nor stretches it; only a date is read
against the wall clock, once, when the answer arrives.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import time
from collections.abc import Callable

MAX_WAIT = 3600.0  # s: the longest wait a Retry-After can ask for
DEFAULT_WAIT = 60.0  # s: a 429 without a Retry-After we can read


def retry_after(value: str | None, *, now: float | None = None) -> float:
    """Seconds to wait from a Retry-After header (``now``: the wall clock for a date), 0 to ``MAX_WAIT``."""
    if value is None:
        return DEFAULT_WAIT
    text = value.strip()
    if text.isascii() and text.isdigit():
        seconds = float(min(int(text), int(MAX_WAIT)))
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_WAIT
        if when.tzinfo is None:  # an HTTP date is in GMT
            when = when.replace(tzinfo=dt.UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(MAX_WAIT, max(0.0, seconds)) if math.isfinite(seconds) else DEFAULT_WAIT


def shown(seconds: float) -> str:
    """A wait for a message: whole seconds, rounded up, so a wait never reads "0 s"."""
    return f"{math.ceil(seconds)} s"


class RateLimits:
    """Servers (by a key: a peer's address, or one gateway) that asked us to wait, until when (``clock``)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}

    def limit(self, key: str, header: str | None) -> float:
        """``key`` answered 429 with this Retry-After header: hold it; the wait in seconds."""
        wait = retry_after(header)
        self._until[key] = self._clock() + wait
        return wait

    def remaining(self, key: str) -> float:
        """Seconds until ``key`` may be asked again; 0 when it may be now."""
        until = self._until.get(key)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._until[key]
            return 0.0
        return left
