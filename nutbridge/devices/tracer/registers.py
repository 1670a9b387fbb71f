"""The EPEver Tracer A/B/AN/BN register map, as data in modbus_map.py's language: its blocks, the registers read
every poll and at start-up, the battery types, the status bits and their decoding.

Sources: EPEVER "B-Series MODBUS Specification V2.3", the LS-B V1.1 list, and replies captured from a
Tracer2215BN (see shared/reference/ecosystem.md §1). Adding a register is adding a row. Nothing here
does I/O: the link is devices/modbus_link.py, the source source.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nutbridge.devices.modbus_map import Block, Register, Table
from nutbridge.model import ChargeStage

# The blocks a Tracer defines. Reads never span two of them (the vendor's own software doesn't).
BLOCKS: tuple[Block, ...] = (
    Block(Table.INPUT, 0x3000, 9),  # rated data
    Block(Table.INPUT, 0x300E, 1),  # rated load current
    Block(Table.INPUT, 0x3100, 8),  # real-time: PV, battery charging
    Block(Table.INPUT, 0x310C, 7),  # real-time: load, temperatures
    Block(Table.INPUT, 0x311A, 2),  # SOC, remote battery temperature
    Block(Table.INPUT, 0x311D, 1),  # battery's real rated voltage
    Block(Table.INPUT, 0x3200, 3),  # status bits
    Block(Table.INPUT, 0x3300, 20),  # statistics (0x3314/15 CO2 is missing on older units)
    Block(Table.INPUT, 0x331A, 5),  # battery: voltage, net current, temperatures
    Block(Table.HOLDING, 0x9000, 15),  # battery settings
    Block(Table.HOLDING, 0x903D, 1),  # load controlling mode
)

# Read every poll.
POLL_REGISTERS: tuple[Register, ...] = (
    # --- real-time (0x3100) ---
    Register(field="pv_voltage", address=0x3100),
    Register(field="pv_current", address=0x3101),
    Register(field="pv_power", address=0x3102, words=2),
    # 0x3105-7 are the *charging* current and power, not the net battery current (that is 0x331B).
    # --- real-time (0x310C): the load registers; 0x3108-0x310B are undocumented, never rely on them ---
    Register(field="load_voltage", address=0x310C),
    Register(field="load_current", address=0x310D),
    Register(field="load_power", address=0x310E, words=2),
    Register(field="battery_temperature", address=0x3110, signed=True),
    Register(field="controller_temperature", address=0x3111, signed=True),
    # SOC is a plain percentage (70 = 70 %) although the PDF says "times 100".
    Register(field="battery_charge", address=0x311A, scale=1),
    # --- status bits, decoded by STATUS_FIELDS below ---
    Register(field="status_battery", address=0x3200, scale=1),
    Register(field="status_charging", address=0x3201, scale=1),
    Register(field="status_discharging", address=0x3202, scale=1),
    # --- statistics: energies are kWh ×100, 32-bit ---
    Register(field="battery_voltage_max_today", address=0x3302),
    Register(field="battery_voltage_min_today", address=0x3303),
    Register(field="energy_consumed_today", address=0x3304, words=2),
    Register(field="energy_consumed_total", address=0x330A, words=2),
    Register(field="energy_generated_today", address=0x330C, words=2),
    Register(field="energy_generated_total", address=0x3312, words=2),
    # --- battery block: the net current is signed 32-bit and must be read in one request ---
    Register(field="battery_voltage", address=0x331A),
    Register(field="battery_current", address=0x331B, words=2, signed=True),
)

# Read at start-up and after every reconnect.
INFO_REGISTERS: tuple[Register, ...] = (
    Register(field="pv_voltage_rated", address=0x3000),
    Register(field="pv_current_rated", address=0x3001),
    Register(field="pv_power_rated", address=0x3002, words=2),
    Register(field="load_current_rated", address=0x300E),
    Register(field="battery_voltage_nominal", address=0x311D),
    Register(field="battery_type", address=0x9000, table=Table.HOLDING, scale=1),
    Register(field="battery_capacity", address=0x9001, table=Table.HOLDING, scale=1),
    Register(field="battery_voltage_high", address=0x9004, table=Table.HOLDING),  # charging limit
    Register(field="battery_voltage_reconnect", address=0x900A, table=Table.HOLDING),  # low-voltage reconnect
    Register(field="battery_voltage_low_recover", address=0x900B, table=Table.HOLDING),  # under-voltage recover
    Register(field="battery_voltage_low", address=0x900C, table=Table.HOLDING),  # under-voltage warning
    Register(field="battery_voltage_disconnect", address=0x900D, table=Table.HOLDING),  # low-voltage disconnect
    Register(field="load_control", address=0x903D, table=Table.HOLDING, scale=1),
)

# 0x903D: how the controller switches its load terminal (epever-load-control.md (c)); only "manual" leaves it on
# until it is told otherwise or the low-voltage disconnect cuts it.
LOAD_CONTROL_MODES: Mapping[int, str] = {0: "manual", 1: "light", 2: "light+timer", 3: "timer"}

# 0x9000 codes; newer AN firmware adds lithium codes 4-12.
BATTERY_TYPES: Mapping[int, str] = {
    0: "user-defined",
    1: "PbAc sealed",
    2: "PbAc gel",
    3: "PbAc flooded",
    **dict.fromkeys(range(4, 8), "LiFePO4"),
    **dict.fromkeys(range(8, 13), "Li-NMC"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusField:
    """A bit field of a status register; ``faults`` names the values that are faults."""

    register: str
    shift: int
    mask: int
    faults: Mapping[int, str]


# 0x3201 D1 "fault" is left out on purpose: units report it with no fault present.
STATUS_FIELDS: tuple[StatusField, ...] = (
    StatusField(
        register="status_battery",
        shift=0,
        mask=0xF,
        faults={1: "battery over-voltage", 4: "battery fault"},
    ),
    StatusField(
        register="status_battery",
        shift=4,
        mask=0xF,
        faults={1: "battery over-temperature", 2: "battery under-temperature"},
    ),
    StatusField(register="status_battery", shift=8, mask=1, faults={1: "battery resistance abnormal"}),
    StatusField(register="status_battery", shift=15, mask=1, faults={1: "wrong rated battery voltage"}),
    # PV state 1 is "no power connected": that is simply night, not a fault.
    StatusField(
        register="status_charging",
        shift=14,
        mask=3,
        faults={2: "PV over-voltage", 3: "PV input voltage error"},
    ),
    StatusField(register="status_charging", shift=13, mask=1, faults={1: "charging MOSFET short"}),
    StatusField(register="status_charging", shift=12, mask=1, faults={1: "charging MOSFET open"}),
    StatusField(register="status_charging", shift=11, mask=1, faults={1: "anti-reverse MOSFET short"}),
    StatusField(register="status_charging", shift=10, mask=1, faults={1: "PV over-current"}),
    StatusField(register="status_charging", shift=9, mask=1, faults={1: "load over-current"}),
    StatusField(register="status_charging", shift=8, mask=1, faults={1: "load short circuit"}),
    StatusField(register="status_charging", shift=7, mask=1, faults={1: "load MOSFET short"}),
    StatusField(register="status_charging", shift=4, mask=1, faults={1: "PV input short circuit"}),
    StatusField(register="status_discharging", shift=12, mask=3, faults={3: "load overload"}),
    StatusField(register="status_discharging", shift=11, mask=1, faults={1: "output short circuit"}),
    StatusField(register="status_discharging", shift=10, mask=1, faults={1: "unable to discharge"}),
    StatusField(register="status_discharging", shift=9, mask=1, faults={1: "unable to stop discharging"}),
    StatusField(register="status_discharging", shift=8, mask=1, faults={1: "output voltage abnormal"}),
    StatusField(register="status_discharging", shift=4, mask=1, faults={1: "output over-voltage"}),
)

# 0x3200 D3-D0: 2 = under-voltage warning, 3 = low-voltage disconnect. Either means "battery low".
BATTERY_LOW_STATES = frozenset({2, 3})
CHARGE_STAGES: Mapping[int, ChargeStage] = {
    0: ChargeStage.OFF,
    1: ChargeStage.FLOAT,
    2: ChargeStage.BOOST,
    3: ChargeStage.EQUALIZE,
}


def decode_status(values: Mapping[str, float]) -> tuple[ChargeStage, bool, tuple[str, ...]]:
    """Charge stage, battery-low flag and fault texts from the three status registers."""
    faults = []
    for field in STATUS_FIELDS:
        code = (int(values[field.register]) >> field.shift) & field.mask
        if code in field.faults:
            faults.append(field.faults[code])
    battery_state = int(values["status_battery"]) & 0xF
    stage = CHARGE_STAGES[(int(values["status_charging"]) >> 2) & 3]
    return stage, battery_state in BATTERY_LOW_STATES, tuple(faults)
