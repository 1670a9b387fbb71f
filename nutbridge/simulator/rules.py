"""EPEver's documented rules for a settings write, checked on the registers as they would be after it. Pure.

Source: shared/reference/epever-load-control.md (b): block writes ([forum-04], kasbert#28: a single or partial
voltage write answers exception 04), battery type gating and User vs rated voltage "auto" ([V2.5] warnings), the
ordering rules (the union of [V2.5] and [MT50]), the clock written as one block ([V2.3]). Where the sources leave
it open, the rule here refuses more rather than less (docs/simulator.md says which and why).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nutbridge.simulator import holding as h

DEVICE_FAILURE = 4  # the only refusal code captured from a Tracer
ILLEGAL_ADDRESS = 2

NAMES = {
    h.OVD: "over-voltage disconnect",
    h.CLV: "charging limit",
    h.OVR: "over-voltage reconnect",
    h.EQV: "equalization",
    h.BST: "boost",
    h.FLT: "float",
    h.BRV: "boost reconnect",
    h.LVR: "low-voltage reconnect",
    h.UVWR: "under-voltage warning recover",
    h.UVW: "under-voltage warning",
    h.LVD: "low-voltage disconnect",
    h.DLV: "discharging limit",
}
# (higher, lower, strictly): the safe set to satisfy is the union of [V2.5]'s and [MT50]'s chains.
ORDER: tuple[tuple[int, int, bool], ...] = (
    (h.OVD, h.OVR, True),
    (h.OVD, h.CLV, True),
    (h.CLV, h.EQV, False),
    (h.EQV, h.BST, False),
    (h.BST, h.FLT, False),
    (h.FLT, h.BRV, True),
    (h.BRV, h.LVR, True),
    (h.LVR, h.LVD, True),
    (h.LVD, h.DLV, False),
    (h.UVWR, h.UVW, True),
    (h.UVW, h.LVD, True),
)
VOLT_RANGE = (900, 1700)  # centivolts on a 12 V system ([MT50]'s 9-17 V), scaled with the rated voltage
# The registers whose values are codes or times, and the values each accepts.
ENUMS = {h.BATTERY_TYPE: range(13), h.LOAD_MODE: range(4), h.RATED_VOLTAGE: range(10), h.TIMER_COUNT: range(2),
         h.MANUAL_DEFAULT: range(2), 0x9070: range(2)}  # fmt: skip
HOURS_MINUTES = (h.WORKING_TIME_1, h.WORKING_TIME_2, h.NIGHT_LENGTH)  # D15-8 h, D7-0 min


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a write is refused, and the Modbus exception code it is answered with."""

    code: int
    rule: str


def refusal(current: Mapping[int, int], address: int, values: Sequence[int]) -> Refusal | None:
    """None when the controller takes ``values`` at ``address`` (one request), else the rule it breaks."""
    written = range(address, address + len(values))
    if unknown := [a for a in written if a not in h.ADDRESSES]:
        return Refusal(ILLEGAL_ADDRESS, f"{unknown[0]:#06x} is no setting of a Tracer")
    after = {**current, **dict(zip(written, values, strict=True))}
    for unit, name in h.WRITE_UNITS:
        touched = [a for a in unit if a in written]
        if touched and len(touched) < len(unit):
            return Refusal(DEVICE_FAILURE, f"{name} must be written together, in one request")
    rule = _codes(after, written) or _clock(after, written)
    if rule is None and h.OVD in written:
        rule = _voltages(after)
    return None if rule is None else Refusal(DEVICE_FAILURE, rule)


def _codes(after: Mapping[int, int], written: range) -> str | None:
    for a in written:
        if a in ENUMS and after[a] not in ENUMS[a]:
            return f"{a:#06x} = {after[a]} is no valid code"
        if a in HOURS_MINUTES and not (after[a] >> 8 < 24 and after[a] & 0xFF < 60):
            return f"{a:#06x} = {after[a]:#06x} is no time (D15-8 hours, D7-0 minutes)"
    for t in h.TIMERS:
        if t in written and not (after[t] < 60 and after[t + 1] < 60 and after[t + 2] < 24):
            return f"the timer at {t:#06x} = {[after[t + i] for i in range(3)]} is no time (s, min, h)"
    if after[h.BATTERY_TYPE] == h.USER and after[h.RATED_VOLTAGE] == 0:
        return "battery type User (0x9000 = 0) cannot go with rated voltage auto (0x9067 = 0)"
    return None


def _clock(after: Mapping[int, int], written: range) -> str | None:
    if h.RTC.start in written and clock(after) is None:
        return f"the clock {[hex(after[a]) for a in h.RTC]} is no date and time"
    return None


def _voltages(after: Mapping[int, int]) -> str | None:
    kind = after[h.BATTERY_TYPE]
    if kind != h.USER and kind not in h.LITHIUM:
        return f"the voltages can be set only with battery type User (0) or lithium (4-12), not {kind}"
    scale = h.RATED_VOLTS.get(after[h.RATED_VOLTAGE], h.AUTO_VOLTS) / 12
    low, high = round(VOLT_RANGE[0] * scale), round(VOLT_RANGE[1] * scale)
    for a in h.VOLTAGES:
        if not low <= after[a] <= high:
            return f"{NAMES[a]} {after[a] / 100:.2f} V is outside {low / 100:.2f}-{high / 100:.2f} V"
    for higher, lower, strictly in ORDER:
        if after[higher] < after[lower] or (strictly and after[higher] == after[lower]):
            sign = ">" if strictly else ">="
            return (f"{NAMES[higher]} {after[higher] / 100:.2f} V must be {sign} "
                    f"{NAMES[lower]} {after[lower] / 100:.2f} V")  # fmt: skip
    return None


def clock(words: Mapping[int, int]) -> dt.datetime | None:
    """The date and time in the RTC registers, or None when they hold none."""
    mmss, ddhh, yymm = (words[a] for a in h.RTC)
    try:
        return dt.datetime(2000 + (yymm >> 8), yymm & 0xFF, ddhh >> 8, ddhh & 0xFF, mmss >> 8, mmss & 0xFF)
    except ValueError:
        return None


def clock_words(when: dt.datetime) -> tuple[int, int, int]:
    """The RTC registers for ``when`` (two-digit year, as the controller keeps it)."""
    return (
        when.minute << 8 | when.second,
        when.day << 8 | when.hour,
        (when.year - 2000) % 100 << 8 | when.month,
    )
