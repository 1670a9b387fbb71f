"""The JSON API's test settings: its network key, control secret, a hand-moved clock and a snapshot."""

from __future__ import annotations

import time
from types import MappingProxyType

from nutbridge.errors import SourceError
from nutbridge.model import Reading
from nutbridge.snapshot import Comms, Snapshot

KEY = "correct horse battery staple"


CONTROL_SECRET = "the operator's secret for /stats/clear"


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def snapshot(comms: Comms = Comms.OK, age: float = 0.0) -> Snapshot:
    t = time.time() - age
    if comms is not Comms.OK:
        return Snapshot(seq=2, time=t, comms=comms, variables=MappingProxyType({}), error=SourceError("no answer"))
    reading = Reading(time=t, battery_charge=71.0, pv_power=88.5)
    return Snapshot(seq=1, time=t, comms=comms, reading=reading, variables=MappingProxyType({"ups.status": "OL CHRG"}))
