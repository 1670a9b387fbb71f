"""The daemon's own pub/sub events: the data of `reading` (every poll) and of `status` (a change of
ups.status or of the comms state), as compact JSON text."""

from __future__ import annotations

import json
import math
from typing import Any

from nutbridge.server.api import iso, reading_json
from nutbridge.snapshot import Comms, Snapshot


def dumps(data: Any) -> str:
    """Our own events' data: compact JSON text (numbers that are not finite become null)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def reading_data(snapshot: Snapshot) -> dict[str, Any]:
    """A poll as the ``reading`` event's data: the keys of ``/api/status`` that belong to one poll."""
    reading = snapshot.reading
    return {
        "seq": snapshot.seq,
        "time": iso(snapshot.time),
        "comms": snapshot.comms.value,
        "error": None if snapshot.error is None else str(snapshot.error),
        "variables": dict(snapshot.variables),
        "reading": None if reading is None else {k: _finite(v) for k, v in reading_json(reading).items()},
    }


def status_data(
    snapshot: Snapshot, ups_status: str | None, previous: tuple[Comms, str | None] | None
) -> dict[str, Any]:
    """A change as the ``status`` event's data: now and before (null for the first poll)."""
    return {
        "seq": snapshot.seq,
        "time": iso(snapshot.time),
        "comms": snapshot.comms.value,
        "ups.status": ups_status,
        "error": None if snapshot.error is None else str(snapshot.error),
        "previous": None if previous is None else {"comms": previous[0].value, "ups.status": previous[1]},
    }
