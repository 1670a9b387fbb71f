"""The daemon's own pub/sub events as compact JSON text: the data of `status` (a change of ups.status or of the
comms state); `reading`'s (every poll) is the snapshot's JSON view (snapshot_json)."""

from __future__ import annotations

import json
from typing import Any

from nutbridge.snapshot import Comms, Snapshot
from nutbridge.snapshot_json import error_text, iso


def dumps(data: Any) -> str:
    """Our own events' data: compact JSON text (numbers that are not finite become null)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def status_data(
    snapshot: Snapshot, ups_status: str | None, previous: tuple[Comms, str | None] | None
) -> dict[str, Any]:
    """A change as the ``status`` event's data: now and before (null for the first poll)."""
    return {
        "seq": snapshot.seq,
        "time": iso(snapshot.time),
        "comms": snapshot.comms.value,
        "ups.status": ups_status,
        "error": error_text(snapshot),
        "previous": None if previous is None else {"comms": previous[0].value, "ups.status": previous[1]},
    }
