"""The power cycle's plan for a Tracer, pure (cycle.py does the Modbus): which registers to write, in which order,
so that the controller's own low-voltage disconnect cuts the load terminal now and its low-voltage reconnect brings
it back when the battery has recovered (mechanism B of shared/reference/epever-load-control.md (f)), and which
writes put the recorded settings back.

EPEver's rules (the reference, (b)): the twelve voltages 0x9003-0x900E are written together in one FC10, only with
battery type User (0) or lithium (4-12); User is refused while the rated voltage code 0x9067 is 0 (auto); and the
voltages must keep the ordering rules below. Each accepted write is taken as one non-volatile (EEPROM) write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nutbridge.errors import NutbridgeError

BLOCK = 0x9000  # battery type, capacity, temperature coefficient, then the 12 voltages
BLOCK_COUNT = 15
VOLTS = 0x9003  # the first of the 12 voltages written together
RATED_CODE = 0x9067  # battery rated voltage: 0 auto, 1 = 12 V, 2 = 24 V, 3 = 36 V, 4 = 48 V (ecosystem.md)
LOAD_MODE = 0x903D  # 0 manual, 1 light on/off, 2 light on + timer, 3 time control
MANUAL_DEFAULT = 0x906A  # the manual load state after the controller starts

USER = 0
LITHIUM = range(4, 13)  # newer AN firmware: 4-7 LiFePO4, 8-12 Li-NiCoMn-O2; take voltages too
RATED_CODES = {12: 1, 24: 2, 36: 3, 48: 4}

# Offsets of the voltages in the 0x9000 block.
OVD, CLV, OVR, EQV, BST, FLT, BRV, LVR, UVWR, UVW, LVD, DLV = range(3, 15)
NAMES = {
    0: "battery type",
    1: "battery capacity",
    2: "temperature coefficient",
    OVD: "over-voltage disconnect",
    CLV: "charging limit",
    OVR: "over-voltage reconnect",
    EQV: "equalization",
    BST: "boost",
    FLT: "float",
    BRV: "boost reconnect",
    LVR: "low-voltage reconnect",
    UVWR: "under-voltage warning recover",
    UVW: "under-voltage warning",
    LVD: "low-voltage disconnect",
    DLV: "discharging limit",
}
# The safe set: the union of [V2.5]'s and [MT50]'s ordering rules, (a, ">" or ">=", b) on block offsets.
ORDER = (
    (OVD, ">", OVR),
    (OVD, ">", CLV),
    (CLV, ">=", EQV),
    (EQV, ">=", BST),
    (BST, ">=", FLT),
    (FLT, ">", BRV),
    (BRV, ">", LVR),
    (LVR, ">", LVD),
    (LVD, ">=", DLV),
    (UVWR, ">", UVW),
    (UVW, ">", LVD),
)
RANGE = (900, 1700)  # 10 mV for a 12 V battery ([MT50]'s user range), scaled with the nominal voltage


class CycleError(NutbridgeError):
    """The power cycle cannot be armed or restored as asked: nothing was changed, or what was is said."""


def address_name(address: int) -> str:
    """``0x900d (low-voltage disconnect)``."""
    named = {RATED_CODE: "rated voltage code", LOAD_MODE: "load control mode", MANUAL_DEFAULT: "manual default"}
    name = NAMES.get(address - BLOCK) if address - BLOCK in NAMES else named.get(address, "?")
    return f"{address:#06x} ({name})"


def order_faults(block: Sequence[int], scale: float = 1.0) -> list[str]:
    """The ordering and range rules the 0x9000 block's voltages break (empty: the controller takes them)."""
    faults = []
    for a, op, b in ORDER:
        if not (block[a] > block[b] if op == ">" else block[a] >= block[b]):
            faults.append(f"{NAMES[a]} {block[a] / 100:.2f} V {op} {NAMES[b]} {block[b] / 100:.2f} V broken")
    low, high = round(RANGE[0] * scale), round(RANGE[1] * scale)
    faults += [
        f"{NAMES[i]} {block[i] / 100:.2f} V outside {low / 100:.2f}-{high / 100:.2f} V"
        for i in range(OVD, DLV + 1)
        if not low <= block[i] <= high
    ]
    return faults


def takes_voltages(battery_type: int) -> bool:
    """Whether the controller takes a voltage block with this battery type."""
    return battery_type == USER or battery_type in LITHIUM


@dataclass(frozen=True, slots=True)
class Controller:
    """The settings the cycle changes or relies on, as read: 0x9000 ×15, 0x9067, 0x903D, 0x906A (None when the
    unit does not answer it)."""

    block: tuple[int, ...]
    rated_code: int
    load_mode: int
    manual_default: int | None = None

    def registers(self) -> dict[int, int]:
        """Address → value, for comparing and reporting."""
        words = {BLOCK + i: v for i, v in enumerate(self.block)}
        words[RATED_CODE] = self.rated_code
        words[LOAD_MODE] = self.load_mode
        if self.manual_default is not None:
            words[MANUAL_DEFAULT] = self.manual_default
        return words

    def to_json(self) -> dict[str, object]:
        return {
            "block": list(self.block),
            "rated_code": self.rated_code,
            "load_mode": self.load_mode,
            "manual_default": self.manual_default,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Controller:
        block = data["block"]
        rated, mode, manual = data["rated_code"], data["load_mode"], data.get("manual_default")
        if not (isinstance(block, list) and len(block) == BLOCK_COUNT and all(_word(v) for v in block)):
            raise ValueError("block: not 15 registers")
        if not (_word(rated) and _word(mode) and (manual is None or _word(manual))):
            raise ValueError("rated_code, load_mode or manual_default: not a register value")
        assert isinstance(rated, int)
        assert isinstance(mode, int)
        assert manual is None or isinstance(manual, int)
        return cls(tuple(block), rated, mode, manual)


def _word(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFF


Write = tuple[int, tuple[int, ...]]  # (address, values): one request


@dataclass(frozen=True, slots=True)
class Plan:
    """The writes, in order, and the settings they leave."""

    writes: tuple[Write, ...]
    after: Controller

    def changes(self, before: Controller) -> list[tuple[int, int, int]]:
        """(address, old, new) for every register the plan changes."""
        old, new = before.registers(), self.after.registers()
        return [(a, old[a], new[a]) for a in sorted(new) if old.get(a) != new[a]]


def nominal_volts(rated_code: int, reported: float | None) -> int:
    """The battery's nominal voltage: 0x9067's when fixed, else the one the controller detected (0x311D)."""
    by_code = {code: volts for volts, code in RATED_CODES.items()}
    if rated_code in by_code:
        return by_code[rated_code]
    if reported and round(reported) in RATED_CODES:
        return round(reported)
    raise CycleError(f"rated voltage code {rated_code} and a detected {reported} V: not a 12/24/36/48 V battery")


def plan_arm(before: Controller, present: float, nominal: int, return_voltage: float) -> Plan:
    """The writes that make the controller cut the load now (LVD above ``present`` volts) and reconnect it at
    ``return_voltage`` (volts per 12 V), every ordering rule kept. CycleError when it cannot be done safely."""
    if before.load_mode != 0:
        raise CycleError(
            f"load control mode {before.load_mode} (0x903D): the load comes back at the reconnect only in manual "
            "mode (0), where the controller's own low-voltage reconnect brings a manual-on load back; set 0x903D = 0"
        )
    scale = nominal / 12
    step = round(10 * scale)  # 0.1 V per 12 V: a gap every rule still sees after rounding
    block = list(before.block)
    block[LVD] = round(present * 100) + step
    block[DLV] = min(block[DLV], block[LVD])
    block[UVW] = max(block[UVW], block[LVD] + step)
    block[UVWR] = max(block[UVWR], block[UVW] + step)
    block[LVR] = max(round(return_voltage * scale * 100), block[LVD] + step)
    if block[LVR] >= block[BRV]:
        raise CycleError(
            f"the battery is at {present:.2f} V: a disconnect above it leaves no reconnect below the boost "
            f"reconnect {block[BRV] / 100:.2f} V (0x9009); not armed"
        )
    if faults := order_faults(block, scale):
        raise CycleError("the raised settings would break the controller's rules: " + "; ".join(faults))
    writes: list[Write] = []
    rated = before.rated_code
    if not takes_voltages(before.block[0]):
        if rated == 0:
            rated = RATED_CODES[nominal]
            writes.append((RATED_CODE, (rated,)))
        writes.append((BLOCK, (USER,)))
        block[0] = USER
    writes.append((VOLTS, tuple(block[OVD:])))
    return Plan(tuple(writes), Controller(tuple(block), rated, before.load_mode, before.manual_default))


def plan_restore(now: Controller, record: Controller) -> Plan:
    """The writes that take the controller from ``now`` back to ``record``, in an order it accepts: the voltages
    as one block while the type takes them (made User first if it does not), then the type, then 0x9067, then
    the load mode and manual default. Only what differs is written."""
    writes: list[Write] = []
    kind, rated = now.block[0], now.rated_code
    if now.block[OVD:] != record.block[OVD:]:
        if not takes_voltages(kind):
            if rated == 0:
                rated = record.rated_code or 1
                writes.append((RATED_CODE, (rated,)))
            kind = USER
            writes.append((BLOCK, (USER,)))
        writes.append((VOLTS, tuple(record.block[OVD:])))
    if kind != record.block[0]:
        if record.block[0] == USER and rated == 0:  # User is refused with auto: the recorded code first
            rated = record.rated_code
            writes.append((RATED_CODE, (rated,)))
        writes.append((BLOCK, (record.block[0],)))
    if now.block[1:3] != record.block[1:3]:
        writes.append((BLOCK + 1, tuple(record.block[1:3])))
    if rated != record.rated_code:
        writes.append((RATED_CODE, (record.rated_code,)))
    if now.load_mode != record.load_mode:
        writes.append((LOAD_MODE, (record.load_mode,)))
    if record.manual_default is not None and now.manual_default != record.manual_default:
        writes.append((MANUAL_DEFAULT, (record.manual_default,)))
    return Plan(tuple(writes), record)
