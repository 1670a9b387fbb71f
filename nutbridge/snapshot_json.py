"""One JSON view of a snapshot, for every consumer that shows one: the JSON API, pub/sub, MQTT and /metrics.

A reading, and any dataclass in it (a gateway's meter row), is rendered by walking its *own* dataclass type,
never the base class, so the fields a family adds (the Powerwall's ``grid_power``, a gateway's meters) reach every
consumer without one knowing the family. Values in SI units as the model holds them: enums by value, tuples as
lists, a nested dataclass as an object, numbers that are not finite as null (JSON has no NaN). No I/O here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from typing import Any

from nutbridge.model import Measure, Reading, measures
from nutbridge.snapshot import Snapshot

# The base Reading's fields: what a consumer shows before any reading has told it the family's type.
READING_FIELDS = tuple(f.name for f in dataclasses.fields(Reading))


def plain(value: object) -> Any:
    """``value`` as JSON-able data: a dataclass by its own type's fields, enums by value, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def reading_json(reading: Reading | None) -> dict[str, Any]:
    """A reading as JSON, every field of its own type; without one, the base fields, each null."""
    if reading is None:
        return dict.fromkeys(READING_FIELDS)
    data: dict[str, Any] = plain(reading)
    return data


def measurements(reading: Reading) -> list[tuple[str, Measure, float]]:
    """The reading's measured fields (those whose Measure its type declares) with a finite value, in its type's
    order: what MQTT's sensors and /metrics' gauges show. A field without a Measure is no measurement (a
    gateway's LOADKWH setting)."""
    found = []
    for name, measure in measures(type(reading)).items():
        value = getattr(reading, name)
        if not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value):
            found.append((name, measure, float(value)))
    return found


def iso(t: float | None) -> str | None:
    """A wall-clock time for people: ISO 8601 with the zone."""
    return None if t is None else dt.datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def error_text(snapshot: Snapshot) -> str | None:
    """The poll's error in words, or None."""
    return None if snapshot.error is None else str(snapshot.error)


def snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    """One poll: its number and time, the comms state, the error, the NUT variables and the reading."""
    return {
        "seq": snapshot.seq,
        "time": iso(snapshot.time),
        "comms": snapshot.comms.value,
        "error": error_text(snapshot),
        "variables": dict(snapshot.variables),
        "reading": None if snapshot.reading is None else reading_json(snapshot.reading),
    }
