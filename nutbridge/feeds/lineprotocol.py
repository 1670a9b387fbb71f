"""The line protocol's answers, apart from the TCP server that carries them (linesocket.py): the newest
snapshot and the last good one, UpTime counted across polls, and the reply to each query (the named ones in
QUERIES, or any NUT variable by its name)."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Mapping

from nutbridge.errors import NutbridgeError
from nutbridge.model import Reading
from nutbridge.snapshot import Comms, Snapshot

MAX_STEP = 3600.0  # s: the longest poll interval; a longer gap between two polls (a suspend) adds no UpTime


NUT_NAME = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+")


GENERATING, NORMAL, STANDBY, SYNCING, FAULT, COMMS_LOST = 7, 6, 3, 2, 0, 1


INVALID = "error: invalid query"


NO_DATA = "no data"


NOT_AVAILABLE = "not available"


class NoAnswer(NutbridgeError):
    """A query that cannot be answered now; the message is the reply's reason."""


def midnight(t: float) -> float:
    """The local midnight that starts the day of ``t``."""
    return dt.datetime.combine(dt.datetime.fromtimestamp(t).date(), dt.time()).timestamp()


def whole(value: float | None, scale: float = 1.0) -> str:
    """An integer reply value, or NoAnswer when the device does not measure it."""
    if value is None:
        raise NoAnswer(NOT_AVAILABLE)
    return str(round(value * scale))


class LineAnswers:
    """The protocol's side of a line socket: keeps the newest snapshot, counts UpTime, answers queries.

    ``clock`` gives wall-clock time, for UpTime's reset at local midnight when no poll comes after it.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.latest: Snapshot | None = None
        self.last_good: Snapshot | None = None
        self._day = 0.0  # the local midnight that starts the day _uptime counts
        self._uptime = 0.0
        self._generating_since: float | None = None  # the previous poll's time, if it answered with PV > 0

    # --- the sink ---

    async def update(self, snapshot: Snapshot) -> None:
        """Keep the snapshot (as the last good one when the poll answered) and count UpTime."""
        self.latest = snapshot
        if not snapshot.ok or snapshot.reading is None:
            self._generating_since = None  # a failed poll breaks the chain: its gap counts for nothing
            return
        self.last_good = snapshot
        t = snapshot.time
        day = midnight(t)
        if day != self._day:
            self._day, self._uptime = day, 0.0
        since = self._generating_since
        if since is not None and 0 < t - since <= MAX_STEP:
            self._uptime += t - max(since, day)  # only the part after midnight counts for the new day
        pv = snapshot.reading.pv_power
        self._generating_since = t if pv is not None and pv > 0 else None

    # --- the queries ---

    def answer(self, query: str) -> str | None:
        """The reply line (without its ``\\n``) to one query; None for a blank keepalive line."""
        text = query.strip()
        if not text:
            return None
        name = text.lower()
        named = QUERIES.get(name)
        try:
            if named is not None:
                label, value = named[0], named[1](self)
            elif NUT_NAME.fullmatch(name):
                label, value = name, self._variable(name)
            else:
                return INVALID
        except NoAnswer as exc:
            return f"error: {exc}"
        return f"success: {label} {value}"

    def _lost(self) -> bool:
        return self.latest is not None and self.latest.comms is Comms.LOST

    def _reading(self) -> Reading:
        """The reading to answer from: the last good one, unless comms are lost."""
        if self._lost() or self.last_good is None or self.last_good.reading is None:
            raise NoAnswer(NO_DATA)
        return self.last_good.reading

    def _variables(self) -> Mapping[str, str | None]:
        if self._lost() or self.last_good is None:
            raise NoAnswer(NO_DATA)
        return self.last_good.variables

    def _variable(self, name: str) -> str:
        if self.last_good is None:
            raise NoAnswer(NO_DATA)  # before the first poll no name is known to be wrong
        if self.last_good.variables.get(name) is None:
            raise NoAnswer("invalid query")
        value = self._variables()[name] or ""
        return " ".join(value.split())  # never a line break inside a reply

    def power_now(self) -> str:
        return whole(self._reading().pv_power)

    def power_today(self) -> str:
        return whole(self._reading().energy_generated_today, 1000)  # kWh → Wh

    def power_total(self) -> str:
        return whole(self._reading().energy_generated_total, 1000)

    def status(self) -> str:
        return str(self.status_code())

    def status_code(self) -> int:
        """The Status number (see the module's docstring)."""
        if self._lost():
            return COMMS_LOST
        good = self.last_good
        if good is None or good.reading is None:
            return SYNCING
        r = good.reading
        if r.faults or (good.power is not None and good.power.alarm):
            return FAULT
        if (r.pv_power or 0) > 0:
            return GENERATING
        if r.pv_voltage is not None and r.battery_voltage is not None and r.pv_voltage > r.battery_voltage:
            return NORMAL
        return STANDBY

    def grid_voltage(self) -> str:
        variables = self._variables()
        voltage = variables.get("input.voltage")
        if voltage is None or variables.get("input.frequency") is None:  # DC: a charge controller's PV input
            raise NoAnswer(NOT_AVAILABLE)
        return voltage

    def grid_frequency(self) -> str:
        frequency = self._variables().get("input.frequency")
        if frequency is None:
            raise NoAnswer(NOT_AVAILABLE)
        return frequency

    def uptime(self) -> str:
        if self.last_good is None:
            raise NoAnswer(NO_DATA)
        if midnight(self.clock()) > self._day:  # a new day, and no poll of it yet
            return "0"
        return str(round(self._uptime))

    def timestamp(self) -> str:
        if self.last_good is None:
            raise NoAnswer(NO_DATA)
        return str(int(self.last_good.time))


QUERIES: Mapping[str, tuple[str, Callable[[LineAnswers], str]]] = {
    name.lower(): (name, get)
    for name, get in (
        ("PowerNow", LineAnswers.power_now),
        ("PowerToday", LineAnswers.power_today),
        ("PowerTotal", LineAnswers.power_total),
        ("Status", LineAnswers.status),
        ("GridV", LineAnswers.grid_voltage),
        ("GridHZ", LineAnswers.grid_frequency),
        ("UpTime", LineAnswers.uptime),
        ("TimeStamp", LineAnswers.timestamp),
    )
}
