"""The NUT table of an Enphase IQ Gateway: the same variables, with the same digits, as NUT's enphase-monitor
writes for the same data, so a user moving over sees no change in upsc but where enphase-monitor was wrong.

- ``input.*`` is the net-consumption meter (the grid), ``output.*`` the total-consumption meter (the load);
  the cumulative row always, and for a 3-phase site each line as ``P.L<n>.*`` with ``P.L<n>-N.voltage``.
- Values keep enphase-monitor's arithmetic: one decimal (power factor two), currents as realpower over
  voltage from the rounded values, truncated to two decimals; ``battery.voltage`` from a LiFePO4 cell table
  scaled by ``battery.voltage.high``; ``battery.runtime`` and ``ups.load`` by its formulas (LOADKWH watts of
  rated output per kWh of battery). The arithmetic is in integers of hundredths, as its shell did, and
  decimals are rounded as bash's printf rounds them (``printf_f``), so the last digit agrees.
- Unlike enphase-monitor, with the meters off (DISABLE_METERS) no meter variable is written at all, and so
  no runtime or load: it wrote zeros, which upsmon and dashboards take for a measured 0 W.
- Unlike enphase-monitor, ``battery.current`` is positive while the battery charges (the gateway's storage
  meter reads negative then), as for every nutbridge source and as CHRG/DISCHRG read it; ``battery.capacity``
  is the batteries' maximum energy (secctrl's Max_energy), not the energy stored at start-up; and a site
  without batteries gets no ``battery.*`` variable at all, so never LB (its gateway reports a charge of 0).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from nutbridge.devices.enphase.model import MFR, MODEL, GatewayReading, Meter
from nutbridge.model import DeviceInfo
from nutbridge.nut.variables import COMMON, RUNTIME_CAP, Inputs, Value, Var, first, hand_set_number

# LiFePO4 cell volts ×100 at 0, 10, … 100 % and 110 % (charging), as enphase-monitor's table
CELL = (250, 290, 310, 320, 325, 330, 335, 340, 345, 350, 360, 365)
# The rows read the gateway's own reading type: no downcast.
Gateway = Inputs[GatewayReading, DeviceInfo]
Row = Var[GatewayReading, DeviceInfo]
DEFAULTS = {
    "battery.type": "LFP",
    "battery.voltage.high": "86.4",
    "battery.voltage.nominal": "76.8",
    "battery.voltage.low": "68.5",
    "battery.charge.restart": "10",
}


LONG_DOUBLE_BITS = 64  # the x87 long double's significand, which bash's printf reads a number into


def long_double(exact: Fraction) -> Fraction:
    """``exact`` rounded to the nearest x87 long double (64-bit significand, ties to even), as strtold does."""
    if exact == 0:
        return exact
    size = abs(exact)
    exponent = size.numerator.bit_length() - size.denominator.bit_length()
    if Fraction(2) ** exponent > size:
        exponent -= 1  # now 2**exponent <= size < 2**(exponent + 1)
    scale = Fraction(2) ** (LONG_DOUBLE_BITS - 1 - exponent)
    return Fraction(round(exact * scale)) / scale


def printf_f(value: float | str, places: int) -> str:
    """``LC_NUMERIC=C printf "%.<places>f" value`` as bash writes it (enphase-monitor's fmtfloat).

    bash reads the text (a float is taken in its shortest form, as jq prints it) into a long double, not a
    double, and rounds that exactly: 455.55 is 455.549999… as a long double, so 455.5, where Python's double
    (455.550000…) gives 455.6. Only a text that is itself a tie at the last place can differ from rounding the
    decimal as written, so only that case takes the long double's way. A negative text keeps its sign even
    when it rounds to zero (``-0.0``), as printf does."""
    text = value if isinstance(value, str) else repr(float(value))
    exact = Decimal(text.strip())
    step = Decimal(1).scaleb(-places)
    rounded = exact.quantize(step, rounding=ROUND_HALF_EVEN)
    if abs(exact - rounded) == step / 2:  # a tie as written: the long double is a hair off it, either side
        nearest = long_double(Fraction(exact))
        rounded = Decimal(round(nearest * 10**places)).scaleb(-places).quantize(step)
    shown = f"{abs(rounded):.{places}f}"
    return f"-{shown}" if exact.is_signed() else shown


def hundredths(value: float | str) -> int:
    """A value ×100, rounded as printf's %.2f rounds (enphase-monitor's int100)."""
    return int(printf_f(value, 2).replace(".", ""))


def ratio(places: int, numerator: int, denominator: int) -> str:
    """numerator / denominator with ``places`` decimals, truncated toward zero (enphase-monitor's idiv2float);
    a zero denominator gives 0."""
    if denominator == 0:
        return f"{0:.{places}f}"
    sign = "-" if (numerator < 0) != (denominator < 0) else ""
    a, b = abs(numerator), abs(denominator)
    whole, fraction = a // b, (a % b) * 10**places // b
    return f"{sign}{whole}.{fraction:0{places}d}"


def one(value: float) -> str:
    return printf_f(value, 1)


def setting(x: Gateway, name: str) -> str | None:
    """A setting: as the port file sets it by hand, else the gateway's or enphase-monitor's default."""
    if name in x.by_hand:
        return x.by_hand[name]
    info = x.info
    found = {
        "battery.capacity": None if info.battery_energy is None else f"{info.battery_energy:g}",
        "battery.charge.restart": None if info.battery_charge_restart is None else f"{info.battery_charge_restart:g}",
    }.get(name)
    return found if found is not None else DEFAULTS.get(name)


def meter_rows(prefix: str, pick: Callable[[GatewayReading], tuple[Meter, ...] | None]) -> list[Row]:
    """The rows of one meter group: the cumulative row, then L1..L3 (3-phase only)."""

    def part(line: int, get: Callable[[Meter], str]) -> Callable[[Gateway], Value]:
        def value(x: Gateway) -> Value:
            r = x.reading
            rows = pick(r)
            if rows is None or len(rows) <= line or (line > 0 and r.phases != 3):
                return None
            return get(rows[line])

        return value

    def current(m: Meter) -> str:
        return ratio(2, hundredths(one(m.watts)), hundredths(one(m.volts)))

    rows = []
    for line in range(4):
        name = prefix if line == 0 else f"{prefix}.L{line}"
        voltage = f"{prefix}.voltage" if line == 0 else f"{prefix}.L{line}-N.voltage"
        rows += [
            Var(name=f"{name}.realpower", value=part(line, lambda m: one(m.watts))),
            Var(name=f"{name}.power", value=part(line, lambda m: one(m.va))),
            Var(name=voltage, value=part(line, lambda m: one(m.volts))),
            Var(name=f"{name}.powerfactor", value=part(line, lambda m: printf_f(m.power_factor, 2))),
            Var(name=f"{name}.frequency", value=part(line, lambda m: one(m.hertz))),
            Var(name=f"{name}.current", value=part(line, current)),
        ]
    return rows


def battery_current(x: Gateway) -> Value:
    """The storage meter's watts over its volts, truncated as enphase-monitor does, but positive while the battery
    charges: the gateway's storage meter reads negative then (its production.json pairs a positive wNow with
    "discharging"), and nutbridge's battery.current, like CHRG/DISCHRG, is + charging."""
    r = x.reading
    if r.storage is None or not r.battery:
        return None
    return ratio(2, -hundredths(r.storage.watts), hundredths(r.storage.volts))


def battery_voltage(x: Gateway) -> Value:
    """Pack volts from the state of charge on a LiFePO4 curve, scaled so 100 % is battery.voltage.high."""
    r, high = x.reading, hand_set_number(setting(x, "battery.voltage.high"))
    if r.battery_charge is None or high is None:
        return None
    soc = min(11000, max(0, hundredths(r.battery_charge)))
    i = 10 if soc > 10000 else soc // 1000
    cell = CELL[i] + (CELL[i + 1] - CELL[i]) * (soc - i * 1000) // 1000
    return ratio(1, cell * hundredths(high) // CELL[10], 100)


def output_watts(r: GatewayReading) -> int | None:
    """The load's watts ×100, from the rounded value as written (what both formulas use)."""
    return None if not r.load else hundredths(one(r.load[0].watts))


def runtime(x: Gateway) -> Value:
    """Seconds from the present charge down to battery.charge.restart at the present load; 2 days at most."""
    r, capacity = x.reading, hand_set_number(setting(x, "battery.capacity"))
    restart = hand_set_number(setting(x, "battery.charge.restart"))
    watts = output_watts(r)
    if r.battery_charge is None or capacity is None or watts is None or restart is None:
        return None
    soc, floor = hundredths(r.battery_charge), hundredths(restart)
    if watts <= 0:
        return RUNTIME_CAP
    if soc < floor:
        return 0
    return min(RUNTIME_CAP, (soc - floor) * int(capacity) * 36 // watts)


def load_percent(x: Gateway) -> Value:
    """The load as a share of what the batteries' inverters can deliver: load_kwh W per kWh of storage."""
    r, capacity = x.reading, hand_set_number(setting(x, "battery.capacity"))
    watts = output_watts(r)
    if capacity is None or watts is None or r.load_kwh <= 0:
        return None
    return ratio(1, watts * 100, int(r.load_kwh) * (int(capacity) // 10))


def phases(x: Gateway) -> Value:
    return "3" if x.reading.phases == 3 else None


def has_battery(x: Gateway) -> bool:
    return x.reading.battery


def fixed(name: str) -> Row:
    """A setting the port file may set; on a site without batteries only a hand-set one is written."""
    return Var(name=name, value=lambda x: setting(x, name) if has_battery(x) else None, setting=True)


def charge(x: Gateway) -> Value:
    r = x.reading
    return r.charge_text if r.charge_text is not None else r.battery_charge


BY_NAME: Mapping[str, Row] = {v.name: v for v in COMMON}
TABLE: tuple[Row, ...] = (
    BY_NAME["ups.status"],
    BY_NAME["ups.alarm"],
    Var(name="battery.charge", value=charge),
    BY_NAME["battery.charge.low"],
    fixed("battery.charge.restart"),
    fixed("battery.capacity"),
    fixed("battery.type"),
    fixed("battery.voltage.high"),
    fixed("battery.voltage.nominal"),
    fixed("battery.voltage.low"),
    Var(name="battery.voltage", value=battery_voltage),
    Var(name="battery.current", value=battery_current),
    Var(name="battery.runtime", value=runtime),
    Var(name="ups.load", value=load_percent),
    *meter_rows("input", lambda r: r.grid),
    *meter_rows("output", lambda r: r.load),
    Var(name="input.phases", value=phases),
    Var(name="output.phases", value=phases),
    Var(name="device.mfr", value=lambda x: first(x.by_hand.get("device.mfr"), MFR), setting=True),
    Var(name="device.model", value=lambda x: first(x.by_hand.get("device.model"), MODEL), setting=True),
    Var(name="ups.mfr", value=lambda x: x.info.mfr, setting=True),
    Var(name="ups.model", value=lambda x: x.info.model, setting=True),
    Var(name="device.type", value=lambda _: "ups", setting=True),
    Var(name="device.serial", value=lambda x: x.info.serial, setting=True),
    Var(name="ups.serial", value=lambda x: x.info.serial, setting=True),
    Var(name="ups.firmware", value=lambda x: x.info.firmware, setting=True),
)
