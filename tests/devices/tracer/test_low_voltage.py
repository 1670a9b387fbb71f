"""LB before the controller cuts its load terminal, on a simulated Tracer over Modbus TCP: its settings as an
installer would leave them (written through the controller's own rules), the battery voltage where the rule in
power.py and docs/nut.md says LB must come, read back by nutbridge's Tracer source and monitor."""

from __future__ import annotations

from pymodbus.client import AsyncModbusTcpClient

from nutbridge.devices.tracer.source import TracerSource
from nutbridge.monitor import Monitor
from nutbridge.power import LowVoltage
from nutbridge.simulator.physics import Mode
from nutbridge.simulator.server import SimulatedTracer

# 0x9003..0x900E as one block (epever-load-control.md (b)): OVD, CLV, OVR, EQV, BST, FLT, BRV, LVR, UVWR, UVW, LVD,
# DLV. EPEver's 12 V defaults but the under-voltage warning lowered to 11.30 V (its recover stays 12.20 V): the
# controller's own flag then comes late, and only the disconnect's guard is left before the 11.10 V cut.
VOLTAGES = [1600, 1500, 1500, 1460, 1440, 1380, 1320, 1260, 1220, 1130, 1110, 1060]


async def installer_settings(sim: SimulatedTracer) -> None:
    """A fixed rated voltage (0x9067 = 1: 12 V), battery type User, then the voltages, as the controller takes them."""
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.port)
    await client.connect()
    try:
        for address, values in ((0x9067, [1]), (0x9000, [0]), (0x9003, VOLTAGES)):
            reply = await client.write_registers(address, values, device_id=1)
            assert not reply.isError(), (hex(address), reply)
    finally:
        client.close()


async def lb_at(source: TracerSource, sim: SimulatedTracer, resting: float) -> tuple[bool, bool]:
    """A new monitor's first poll with the battery resting at ``resting`` volts and nothing drawn: (LB, whether
    the controller's own under-voltage flag said so). battery.charge.low at 1 %: the charge never decides here."""
    sim.plant.set_resting_voltage(resting)
    monitor = Monitor(source, interval=1.0, charge_low=lambda: 1.0, low_voltage=LowVoltage())
    snapshot = await monitor.poll()
    assert snapshot.power is not None and snapshot.reading is not None, snapshot
    assert snapshot.reading.battery_voltage == resting  # no current: the terminal voltage is the resting one
    return snapshot.power.low, snapshot.reading.battery_low


async def test_lb_comes_at_the_disconnect_plus_the_margin_not_at_the_cut(
    source: TracerSource, sim: SimulatedTracer
) -> None:
    sim.plant.set_mode(Mode.NIGHT)
    sim.plant.load_w = 0.0  # nothing drawn: the voltage is the resting one, the guard's drain term 0
    await installer_settings(sim)
    await source.reset()  # the settings are read when the source connects
    info = await source.connect()
    assert (info.battery_voltage_disconnect, info.battery_voltage_low) == (11.10, 11.30)
    # 11.10 V + 0.30 V: LB at 11.40 V, 0.30 V before the controller cuts, though its own warning (11.30 V) is silent
    assert await lb_at(source, sim, 11.40) == (True, False)
    assert await lb_at(source, sim, 11.45) == (False, False)
    assert await lb_at(source, sim, 11.25) == (True, True)  # below 11.30 V the controller's flag says so too
