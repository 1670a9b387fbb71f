"""The simulated Tracer's load terminal, read over a real socket while the test moves the plant's clock: the
low-voltage disconnect and reconnect, the under-voltage warning, the load modes. Thresholds and meanings are the
reference's (epever-load-control.md: [TD] defaults LVD 11.10 V, LVR 12.60 V, UVW 12.00 V, UVWR 12.20 V; 0x3200
D3-D0 3 = low-voltage disconnect, 2 = under-voltage; 0x3202 D0 = the load runs; the load registers read 0 while
it is off; the modes of 0x903D and their registers)."""

from __future__ import annotations

from nutbridge.simulator.physics import Mode
from tests.simulator.conftest import Unit, frame

LVD, LVR, UVW, UVWR = 11.10, 12.60, 12.00, 12.20  # [TD]
NORMAL, UNDER_VOLTAGE, DISCONNECTED = 0, 2, 3  # 0x3200 D3-D0


async def test_lvd_cuts_at_or_below_11_10_and_only_lvr_12_60_reconnects(unit: Unit) -> None:
    unit.plant.load_w = 0.0  # no current: the battery reads exactly the voltage staged
    for volts, expected in ((11.11, (UNDER_VOLTAGE, True)), (LVD, (DISCONNECTED, False)),
                            (11.50, (DISCONNECTED, False)), (12.59, (DISCONNECTED, False)),
                            (LVR, (NORMAL, True))):  # fmt: skip
        unit.plant.set_resting_voltage(volts)
        assert await unit.battery_volts() == volts
        assert await unit.status() == expected, volts
        if not expected[1]:
            assert await unit.load_registers() == [0, 0, 0, 0]


async def test_under_voltage_warning_from_12_00_until_12_20(unit: Unit) -> None:
    unit.plant.load_w = 0.0
    for volts, state in ((12.01, NORMAL), (UVW, UNDER_VOLTAGE), (12.19, UNDER_VOLTAGE), (UVWR, NORMAL),
                         (12.10, NORMAL)):  # fmt: skip
        unit.plant.set_resting_voltage(volts)
        assert await unit.status() == (state, True), volts


async def test_a_night_drains_to_lvd_and_only_charging_brings_the_load_back(unit: Unit) -> None:
    """Minute by minute: the load never runs at or below LVD, is never cut at or above LVR, is cut by the night,
    stays cut through the rest of it, and comes back only with the sun."""
    unit.plant.set_charge(8)  # the 15 W load on, well above LVD
    seen: list[tuple[bool, bool, float, int]] = []  # (load runs, PV present, volts, battery state)
    for minute in range(16 * 60):
        if minute == 10 * 60:
            unit.plant.set_mode(Mode.SUN)
        unit.plant.advance(60)
        state, runs = await unit.status()
        volts = await unit.battery_volts()
        pv = await unit.client.read_input_registers(0x3102, count=2, device_id=1)
        seen.append((runs, any(pv.registers), volts, state))
        assert not runs or volts > LVD, (minute, volts)
        assert runs or state != DISCONNECTED or volts < LVR, (minute, volts)
        assert runs == (state != DISCONNECTED), (minute, state)
        if not runs:
            assert await unit.load_registers() == [0, 0, 0, 0]
    cut = next(i for i, s in enumerate(seen) if not s[0])
    back = next(i for i, s in enumerate(seen) if i > cut and s[0])
    assert cut < 10 * 60 <= back  # cut in the night, back after sunrise
    assert all(not s[0] and s[3] == DISCONNECTED for s in seen[cut:back])
    assert seen[back][1] and seen[back][2] >= LVR  # back while charging, at LVR


async def test_a_manual_off_load_stays_off_through_lvr(unit: Unit) -> None:
    unit.plant.load_w = 0.0
    assert await unit.coil(False) is False
    unit.plant.set_resting_voltage(LVD)
    assert await unit.status() == (DISCONNECTED, False)
    unit.plant.set_resting_voltage(LVR)
    assert await unit.status() == (NORMAL, False)  # LVR undoes only the cut
    assert await unit.coil(True) is True
    assert await unit.status() == (NORMAL, True)


async def test_raising_lvd_above_the_battery_cuts_and_the_restore_waits_for_lvr(unit: Unit) -> None:
    """The reference's mechanism B on the simulator: one block with LVD above the present voltage cuts the load;
    writing the original block back does not reconnect it, only the voltage reaching LVR does."""
    await unit.make_user_type()
    original = await unit.holding(0x9003, 12)
    volts = await unit.battery_volts()
    assert LVD < volts < LVR and (await unit.status())[1]
    raised = [*original[:7], 1310, 1300, 1295, 1290, original[11]]  # LVR 13.10, UVWR 13.00, UVW 12.95, LVD 12.90
    assert not (await unit.write(0x9003, raised)).isError()
    assert await unit.status() == (DISCONNECTED, False)
    assert not (await unit.write(0x9003, original)).isError()
    assert await unit.status() == (DISCONNECTED, False)
    assert await unit.battery_volts() < LVR
    unit.plant.set_mode(Mode.SUN)
    unit.plant.advance(60)
    assert await unit.battery_volts() >= LVR
    assert await unit.status() == (NORMAL, True)


async def test_a_restart_at_or_below_lvd_keeps_the_load_cut(unit: Unit) -> None:
    unit.plant.load_w = 0.0
    unit.plant.set_resting_voltage(11.00)
    assert await unit.status() == (DISCONNECTED, False)
    unit.sim.restart()
    assert await unit.coil() is True  # 0x906A = 1
    assert await unit.status() == (DISCONNECTED, False)  # the voltage still says disconnect


async def test_time_control_follows_the_controllers_clock(unit: Unit) -> None:
    assert not (await unit.write_single(0x903D, 3)).isError()  # mode 3: time control
    address, values = frame("01 10 90 13 00 03 06 30 35 13 00 0F 06")  # [CAP]: 2015-06-19 00:48:53
    assert not (await unit.write(address, values)).isError()
    assert (await unit.status())[1]  # [TD]'s timer 1: on 19:00:00, off 06:00:00
    unit.plant.advance(5 * 3600 + 11 * 60 + 6)  # 05:59:59
    assert (await unit.status())[1]
    unit.plant.advance(1)  # 06:00:00
    assert not (await unit.status())[1]
    assert await unit.load_registers() == [0, 0, 0, 0]
    assert await unit.coil(True) is True  # coil 2 works only in manual mode
    assert not (await unit.status())[1]
    unit.plant.advance(13 * 3600 - 1)  # 18:59:59
    assert not (await unit.status())[1]
    unit.plant.advance(1)  # 19:00:00
    assert (await unit.status())[1]
    assert not (await unit.write(0x9048, [0, 0, 12, 0, 0, 13])).isError()  # timer 2: 12:00 to 13:00
    assert not (await unit.write_single(0x9069, 1)).isError()  # two timers
    unit.plant.advance(17 * 3600 + 30 * 60)  # 12:30 the next day
    assert (await unit.status())[1]
    assert not (await unit.write_single(0x9069, 0)).isError()  # one timer: timer 2 no longer counts
    assert not (await unit.status())[1]


async def test_light_control_follows_the_pv_voltage_after_its_delay(unit: Unit) -> None:
    unit.plant.set_mode(Mode.SUN)
    unit.plant.advance(11 * 60)  # PV above 6.00 V for 10 min (0x9020, 0x9021): day
    assert not (await unit.write_single(0x903D, 1)).isError()  # mode 1: light on/off
    assert not await unit.night_input()
    assert not (await unit.status())[1]
    unit.plant.set_mode(Mode.NIGHT)  # PV below 5.00 V (0x901E)
    unit.plant.advance(9 * 60)
    assert not (await unit.status())[1]  # not before 10 min (0x901F)
    unit.plant.advance(60)
    assert await unit.night_input()
    assert (await unit.status())[1]
    unit.plant.set_mode(Mode.SUN)
    unit.plant.advance(10 * 60)
    assert not await unit.night_input()
    assert not (await unit.status())[1]
