"""The load terminal as the controller drives it: the load mode says whether it wants the output on, and the
low-voltage disconnect overrides it. Pure; the plant calls ``sense`` whenever its state moves.

- LVD/LVR: at or below 0x900D the load is cut (battery status 3) until the voltage reaches 0x900A, at once, with no
  delay (none is documented). UVW/UVWR: at or below 0x900C the under-voltage warning (status 2) until 0x900B.
- The light signal (modes 1 and 2, discrete input 0x200C): night once PV stays below 0x901E for 0x901F minutes,
  day once it stays above 0x9020 for 0x9021 minutes.
- Mode 0: coil 2. Mode 1: night. Mode 2: night, for working time 1 (0x903E) after dusk and working time 2
  (0x903F) before dawn, dawn taken as dusk + the night length 0x9065 (not learnt). Mode 3: the clock inside timer
  1's on/off interval (or timer 2's, with 0x9069 = 1); an interval over midnight wraps, on = off is never on.
"""

from __future__ import annotations

from dataclasses import dataclass

from nutbridge.simulator import holding as h
from nutbridge.simulator.settings import Settings

DAY = 86400


@dataclass(slots=True)
class LoadTerminal:
    """The controller's latches: all of it is RAM, so a restart starts a new one."""

    cut: bool = False  # the low-voltage disconnect has cut the load
    warning: bool = False  # under-voltage warning
    night: bool = False  # the light signal
    dusk: float | None = None  # simulated second the present night began
    crossing: float | None = None  # since when PV has been past the threshold that would flip ``night``

    def boot(self, pv_volts: float, now: float, settings: Settings) -> None:
        """A controller that just started: the light signal from the PV voltage as it is, without the delay."""
        self.night = pv_volts < settings.volts(h.NIGHT_VOLTS)
        self.dusk = now if self.night else None

    def sense(self, centivolts: int, pv_volts: float, now: float, settings: Settings) -> None:
        """Look at the battery (in the controller's 10 mV steps) and the panels."""
        words = settings.words
        if centivolts <= words[h.LVD]:
            self.cut = True
        elif centivolts >= words[h.LVR]:
            self.cut = False
        if centivolts <= words[h.UVW]:
            self.warning = True
        elif centivolts >= words[h.UVWR]:
            self.warning = False
        self._light(pv_volts, now, settings)

    def _light(self, pv_volts: float, now: float, settings: Settings) -> None:
        if self.night:
            flips, delay = pv_volts > settings.volts(h.DAY_VOLTS), settings.words[h.DAY_DELAY]
        else:
            flips, delay = pv_volts < settings.volts(h.NIGHT_VOLTS), settings.words[h.NIGHT_DELAY]
        if not flips:
            self.crossing = None
            return
        if self.crossing is None:
            self.crossing = now
        if now - self.crossing >= delay * 60:
            self.night, self.crossing = not self.night, None
            self.dusk = now if self.night else None

    def wanted(self, coil: bool, settings: Settings, now: float) -> bool:
        """Whether the load mode wants the output on (before the low-voltage disconnect)."""
        mode = settings.load_mode
        if mode == 0:
            return coil
        if mode == 1:
            return self.night
        if mode == 2:
            return self.night and self._night_timers(settings, now)
        rtc = settings.rtc(now)
        clock = rtc.hour * 3600 + rtc.minute * 60 + rtc.second
        timers = h.TIMERS if settings.words[h.TIMER_COUNT] else h.TIMERS[:2]
        return any(
            inside(clock, settings.time_of_day(on), settings.time_of_day(off))
            for on, off in zip(timers[::2], timers[1::2], strict=True)
        )

    def _night_timers(self, settings: Settings, now: float) -> bool:
        since = now - (now if self.dusk is None else self.dusk)
        dawn = settings.hours_minutes(h.NIGHT_LENGTH)
        return since < settings.hours_minutes(h.WORKING_TIME_1) or (
            dawn - settings.hours_minutes(h.WORKING_TIME_2) <= since < dawn
        )

    def output(self, coil: bool, settings: Settings, now: float) -> bool:
        """The load terminal: on when the mode wants it and the low-voltage disconnect has not cut it."""
        return not self.cut and self.wanted(coil, settings, now)


def inside(clock: int, on: int, off: int) -> bool:
    """Whether seconds-since-midnight ``clock`` lies in [on, off), wrapping over midnight; on = off is empty."""
    if on <= off:
        return on <= clock < off
    return clock >= on or clock < off
