"""This process's local time zone for a while (and so its children's, a daemon's): TZ set, tzset, put back."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator


@contextlib.contextmanager
def local_zone(zone: str) -> Iterator[str]:
    """``zone`` (an IANA name) as the local time zone until the block ends."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield zone
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()
