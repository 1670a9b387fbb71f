"""The settings a simulated Tracer keeps as a real one does: its holding registers, written only as EPEver's rules
allow (rules.py), kept through a controller restart (non-volatile, counted), and its real-time clock. Pure; the
clock is the plant's (simulated seconds), so a test moves it by advancing the plant.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from nutbridge.simulator import holding as h
from nutbridge.simulator.rules import Refusal, clock, clock_words, refusal

DEFAULT_DATE = dt.datetime(2026, 1, 1)  # the clock's date at simulated second 0 unless told otherwise


@dataclass(slots=True)
class Settings:
    """Holding registers by address (the clock's three are computed from ``rtc_base``), and how many writes the
    controller has stored: every accepted write is taken as one non-volatile (EEPROM) write."""

    words: dict[int, int] = field(default_factory=lambda: dict(h.DEFAULTS))
    rtc_base: dt.datetime = DEFAULT_DATE  # what the clock read at simulated second 0
    nv_writes: int = 0

    def rtc(self, now: float) -> dt.datetime:
        """The controller's clock at simulated second ``now`` (whole seconds, as it counts)."""
        return self.rtc_base + dt.timedelta(seconds=int(now))

    def read(self, address: int, now: float) -> int:
        """One holding register as the controller answers it at ``now``."""
        if address in h.RTC:
            return clock_words(self.rtc(now))[address - h.RTC.start]
        return self.words[address]

    def snapshot(self, now: float) -> dict[int, int]:
        """Every holding register at ``now``."""
        return {a: self.read(a, now) for a in sorted(h.ADDRESSES)}

    def write(self, address: int, values: Sequence[int], now: float) -> Refusal | None:
        """Store ``values`` from ``address`` (one Modbus request) if the rules allow it; else the rule broken, with
        nothing changed."""
        words = self.snapshot(now)
        if (refused := refusal(words, address, values)) is not None:
            return refused
        words.update(zip(range(address, address + len(values)), values, strict=True))
        if h.RTC.start in range(address, address + len(values)):
            when = clock(words)
            assert when is not None  # the rules refuse a clock that is no date
            self.rtc_base = when - dt.timedelta(seconds=int(now))
        for a in range(address, address + len(values)):
            if a not in h.RTC:
                self.words[a] = words[a]
        self.nv_writes += 1
        return None

    def volts(self, address: int) -> float:
        """A voltage setting in volts."""
        return self.words[address] / 100

    def hours_minutes(self, address: int) -> float:
        """A D15-8 hours, D7-0 minutes register in seconds."""
        word = self.words[address]
        return (word >> 8) * 3600.0 + (word & 0xFF) * 60.0

    def time_of_day(self, address: int) -> int:
        """A timer's (s, min, h) registers from ``address``, as seconds since midnight."""
        s, m, hours = (self.words[address + i] for i in range(3))
        return hours * 3600 + m * 60 + s

    @property
    def load_mode(self) -> int:
        """0x903D: 0 manual, 1 light on/off, 2 light on + timer, 3 time control."""
        return self.words[h.LOAD_MODE]

    @property
    def manual_default_on(self) -> bool:
        """0x906A: the manual load state a restart sets."""
        return bool(self.words[h.MANUAL_DEFAULT])
