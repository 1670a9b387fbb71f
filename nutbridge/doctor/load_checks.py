"""The controller's own load terminal, as upsd publishes its settings (a Tracer, the simulator): a host powered
from it must be shut down by NUT before the controller cuts it. Nothing to check for a device without one."""

from __future__ import annotations

from nutbridge.doctor.context import FAIL, OK, WARN, Context, Result
from nutbridge.power import NOMINAL_12V, LowVoltage

DISCONNECT = "experimental.battery.voltage.disconnect"
CONTROL = "experimental.output.control"
MODE_REGISTER = {"manual": 0, "light": 1, "light+timer": 2, "timer": 3}  # 0x903D, epever-load-control.md (c)
FULL_REST_12V = 12.6  # V: a full 12 V lead-acid battery at rest; LB above it would be raised all the time
DEFAULT_DISCONNECT_12V, DEFAULT_RECONNECT_12V = 11.10, 12.60  # EPEver's 12 V defaults (the reference's [TD])
HOST_CURRENT = 0.05  # A: a running Pi draws 0.15 A or more from 12 V; a current sensor reads some 10 mA of noise


def check_load_terminal(ctx: Context) -> Result | None:
    """The controller switches its load terminal by hand only (0x903D manual), and NUT's LB comes before its
    low-voltage disconnect (0x900D) without being raised all the time. None when upsc has no such settings."""
    name = "load-terminal"
    answer = ctx.ask_upsc()
    values = answer.values
    if answer.error is not None or (DISCONNECT not in values and CONTROL not in values):
        return None  # upsc's own check says why it does not answer; other devices have no load terminal
    control = values.get(CONTROL)
    if control is not None and control != "manual":
        register = MODE_REGISTER.get(control)
        return Result(
            name,
            FAIL,
            f"the controller switches its load terminal by {control} (0x903D = {register}): it cuts a host powered "
            "from it at dawn or by its clock, with no word to NUT",
            "set register 0x903D (load controlling mode) to 0, manual: on the MT50, Load → Manual; or EPEver's "
            f"own software; then `sudo systemctl reload nutbridge@{ctx.ups}` (or restart the driver) to read it again",
        )
    try:
        disconnect = float(values[DISCONNECT])
        nominal = float(values.get("battery.voltage.nominal") or NOMINAL_12V)
    except (KeyError, ValueError):
        return Result(name, OK, f"load control {control or 'unknown'}; the controller's disconnect is not known")
    guard = (
        LowVoltage()
        if ctx.config is None
        else LowVoltage(margin=ctx.config.power.disconnect_margin, shutdown_seconds=ctx.config.power.shutdown_seconds)
    )
    scale = nominal / NOMINAL_12V
    lb_at = disconnect + guard.margin * scale
    if lb_at >= FULL_REST_12V * scale:
        return Result(
            name,
            FAIL,
            f"the controller cuts its load at {disconnect:.2f} V (0x900D), so NUT is told LB from {lb_at:.2f} V: "
            f"above a full {nominal:g} V battery at rest, LB all the time",
            f"write 0x900D (low voltage disconnect) back to {DEFAULT_DISCONNECT_12V * scale:.2f} V and 0x900A "
            f"(reconnect) to {DEFAULT_RECONNECT_12V * scale:.2f} V, EPEver's defaults, as one block with the other "
            "voltages (battery type User); or lower [power] disconnect_margin",
        )
    said = (
        f"load control {control or 'unknown'}; the controller cuts its load at {disconnect:.2f} V, NUT is told LB "
        f"at {lb_at:.2f} V or earlier (the margin, plus {guard.shutdown_seconds:g} s of the drain at the time)"
    )
    load = number(values.get("output.current"))
    if ctx.config is not None and ctx.config.power.cycle and load is not None and load < HOST_CURRENT:
        return Result(
            name,
            WARN,
            f"{said}; but [power] cycle is on and the load terminal carries {load:g} A while this host runs: as far as "
            "upsc tells, the host is not powered from it, and the power cycle would cut the terminal without "
            "bringing this host back",
            f"power the host from the controller's load terminal, or set cycle = false in [power] of {ctx.config_file}",
        )
    return Result(name, OK, said)


def number(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None
