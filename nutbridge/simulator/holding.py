"""The simulated Tracer's holding registers (its settings): addresses, the blocks a real unit answers, their
defaults, and the groups a write must cover whole. Data only; no I/O.

Source: shared/reference/epever-load-control.md and ecosystem.md §1.8, with the defaults a real Tracer2215BN
answered ([TD], kasbert/epsolar-tracer test/testdata.py): EPEver's 12 V sealed lead-acid settings.
"""

from __future__ import annotations

from collections.abc import Mapping

from nutbridge.devices.modbus_map import Block, Table

# 0x9000-0x900E: battery settings
BATTERY_TYPE = 0x9000  # 0 User, 1 sealed, 2 gel, 3 flooded, 4-12 lithium
CAPACITY = 0x9001  # Ah
TEMP_COEFFICIENT = 0x9002  # mV/°C/2V ×100
OVD = 0x9003  # over-voltage disconnect
CLV = 0x9004  # charging limit
OVR = 0x9005  # over-voltage reconnect
EQV = 0x9006  # equalization
BST = 0x9007  # boost
FLT = 0x9008  # float
BRV = 0x9009  # boost reconnect
LVR = 0x900A  # low-voltage reconnect
UVWR = 0x900B  # under-voltage warning recover
UVW = 0x900C  # under-voltage warning
LVD = 0x900D  # low-voltage disconnect
DLV = 0x900E  # discharging limit
VOLTAGES = range(OVD, DLV + 1)  # written together or not at all
# 0x9013-0x9021: clock, temperature limits, light signal
RTC = range(0x9013, 0x9016)  # D15-8 min / D7-0 s; D15-8 day / D7-0 h; D15-8 year-2000 / D7-0 month
NIGHT_VOLTS = 0x901E  # PV below this means night
NIGHT_DELAY = 0x901F  # minutes PV must stay below it
DAY_VOLTS = 0x9020  # PV above this means day
DAY_DELAY = 0x9021
# 0x903D-0x903F, 0x9042-0x904D, 0x9065-0x9070: the load
LOAD_MODE = 0x903D  # 0 manual, 1 light on/off, 2 light on + timer, 3 time control
WORKING_TIME_1 = 0x903E  # D15-8 h, D7-0 min: on after dusk (mode 2)
WORKING_TIME_2 = 0x903F  # on before dawn (mode 2)
TIMERS = (0x9042, 0x9045, 0x9048, 0x904B)  # on 1, off 1, on 2, off 2: each (s, min, h)
NIGHT_LENGTH = 0x9065  # D15-8 h, D7-0 min (mode 2's dawn)
RATED_VOLTAGE = 0x9067  # 0 auto, 1 = 12 V, 2 = 24 V, ...
TIMER_COUNT = 0x9069  # 0 one timer, 1 two
MANUAL_DEFAULT = 0x906A  # the manual load state after power-up: 0 off, 1 on

USER, LITHIUM = 0, range(4, 13)
RATED_VOLTS = {1: 12, 2: 24, 3: 36, 4: 48, 5: 60, 6: 110, 7: 120, 8: 220, 9: 240}
AUTO_VOLTS = 12  # what "auto" detects on the simulated 12 V battery

# The holding blocks a real unit answered ([TD] read each of these addresses; it was never asked for others).
BLOCKS: tuple[Block, ...] = (
    Block(Table.HOLDING, 0x9000, 15),  # battery settings
    Block(Table.HOLDING, 0x9013, 15),  # RTC, equalization cycle, temperature limits, line impedance, light signal
    Block(Table.HOLDING, 0x903D, 3),  # load mode, working times
    Block(Table.HOLDING, 0x9042, 12),  # the two timers' on and off times
    Block(Table.HOLDING, 0x9065, 1),  # night length
    Block(Table.HOLDING, 0x9067, 1),  # rated voltage code
    Block(Table.HOLDING, 0x9069, 6),  # timer count, manual default, equalize/boost durations, dis/charging %
    Block(Table.HOLDING, 0x9070, 1),  # battery management mode
)
ADDRESSES = frozenset(a for b in BLOCKS for a in range(b.address, b.end))

SEALED_12V = (1, 100, 300, 1600, 1500, 1500, 1460, 1440, 1380, 1320, 1260, 1220, 1200, 1110, 1060)
# Every register but the clock, as [TD] read them.
DEFAULTS: Mapping[int, int] = {
    **{0x9000 + i: v for i, v in enumerate(SEALED_12V)},
    0x9016: 30,  # equalization cycle, days
    0x9017: 6500,  # battery temperature upper limit, 65 °C
    0x9018: 0xF060,  # lower limit, -40 °C
    0x9019: 8500,  # controller inner temperature upper limit
    0x901A: 7500,  # its recover
    0x901B: 8500,  # power components' upper limit
    0x901C: 7500,  # their recover
    0x901D: 0,  # line impedance
    NIGHT_VOLTS: 500,
    NIGHT_DELAY: 10,
    DAY_VOLTS: 600,
    DAY_DELAY: 10,
    LOAD_MODE: 0,
    WORKING_TIME_1: 0x0100,  # 1 h
    WORKING_TIME_2: 0x0100,
    **{t + i: v for t, hour in zip(TIMERS, (19, 6, 19, 6), strict=True) for i, v in enumerate((0, 0, hour))},
    NIGHT_LENGTH: 0x030F,
    RATED_VOLTAGE: 0,
    TIMER_COUNT: 0,
    MANUAL_DEFAULT: 1,
    0x906B: 120,  # equalize duration, min
    0x906C: 120,  # boost duration, min
    0x906D: 30,  # discharging percentage
    0x906E: 100,  # charging percentage
    0x9070: 0,  # battery management mode
}

# Writes must cover each of these whole or not touch it (a single or partial write is refused).
WRITE_UNITS: tuple[tuple[range, str], ...] = (
    (VOLTAGES, "the voltages 0x9003-0x900E"),
    (RTC, "the clock 0x9013-0x9015"),
    *((range(t, t + 3), f"the timer {t:#06x}-{t + 2:#06x} (s, min, h)") for t in TIMERS),
)
