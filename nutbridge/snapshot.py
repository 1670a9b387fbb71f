"""What one poll produced, as every sink sees it: one immutable Snapshot, made by the monitor. No I/O here."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from nutbridge.errors import SourceError
from nutbridge.model import DeviceInfo, Reading
from nutbridge.outlook import Outlook
from nutbridge.power import PowerState

# A view the monitor derives from each answered poll (the NUT variables, with the port file's hand-set settings,
# are one): the reading, what the device says about itself, the power state and the outlook until sunrise (None:
# unknown) → names and values (None = delete).
View = Callable[[Reading, DeviceInfo, PowerState, Outlook | None], Mapping[str, str | None]]


class Comms(enum.Enum):
    """The device's comms state, as NUT should see it."""

    OK = "ok"  # this poll answered
    FAILING = "failing"  # polls fail, but the device has been silent for less than the grace: keep the last values
    LOST = "lost"  # silent for the grace or longer: NUT is told (the port file is renamed)


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """One poll. ``reading``, ``info``, ``power`` and ``variables`` are empty unless the poll answered.

    ``variables`` are the NUT variables (None = delete), the view the daemon hands the monitor, computed
    once with the port file's hand-set settings applied; ``time`` and ``last_good`` are wall-clock times for
    people, not for intervals.
    """

    seq: int
    time: float
    comms: Comms
    reading: Reading | None = None
    info: DeviceInfo | None = None
    power: PowerState | None = None
    outlook: Outlook | None = None  # the next sunrise and the charge then (outlook.py), when known
    variables: Mapping[str, str | None]
    error: SourceError | None = None
    failures: int = 0  # failed polls in a row
    failures_total: int = 0  # failed polls since the daemon started (``seq`` counts every poll)
    silent_for: float = 0.0  # seconds since the first failed poll of this run of failures
    last_good: float | None = None

    @property
    def ok(self) -> bool:
        """True when this poll answered."""
        return self.comms is Comms.OK
