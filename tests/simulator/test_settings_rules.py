"""The simulated Tracer's settings and EPEver's documented write rules, over a real socket. Every expected value
is the reference's (shared/reference/epever-load-control.md and ecosystem.md §1.8/§1.12: [TD] is a real
Tracer2215BN's replies, [V2.5] EPEver's protocol with its example frames, [CAP] EPEver's own PC software on the
wire, [forum-04] and kasbert#28 refusals seen from real units)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.simulator.conftest import Unit, frame

SEALED_12V = [1, 100, 300, 1600, 1500, 1500, 1460, 1440, 1380, 1320, 1260, 1220, 1200, 1110, 1060]  # [TD]
VOLTAGES = SEALED_12V[3:]  # 0x9003-0x900E
# 0x9003 .. 0x900E, by name, to build blocks that break (or keep) one ordering rule
NAMES = ("OVD", "CLV", "OVR", "EQV", "BST", "FLT", "BRV", "LVR", "UVWR", "UVW", "LVD", "DLV")


def voltages(**changes: int) -> list[int]:
    """The 12 V sealed voltages (0x9003 ×12) with some changed, in centivolts."""
    by_name = dict(zip(NAMES, VOLTAGES, strict=True)) | changes
    return [by_name[n] for n in NAMES]


async def test_reads_the_settings_a_real_unit_answered_and_nothing_between(unit: Unit) -> None:
    assert await unit.holding(0x9000, 15) == SEALED_12V
    assert await unit.holding(0x901E, 4) == [500, 10, 600, 10]  # [TD]: light signal thresholds and delays
    assert await unit.holding(0x903D, 3) == [0, 0x0100, 0x0100]  # manual mode; working times 1 h
    on_off = [0, 0, 19, 0, 0, 6]  # [TD]: on 19:00:00, off 06:00:00
    assert await unit.holding(0x9042, 12) == on_off + on_off
    assert await unit.holding(0x9065) == [0x030F]
    assert await unit.holding(0x9067) == [0]  # rated voltage auto
    assert await unit.holding(0x9069, 6) == [0, 1, 120, 120, 30, 100]  # one timer, manual default on, ...
    assert await unit.coil() is True  # [TD]: coil 2 reads 1
    for address, count in ((0x900F, 1), (0x9000, 16), (0x9066, 1), (0x9068, 1), (0x906F, 1)):
        reply = await unit.client.read_holding_registers(address, count=count, device_id=1)
        assert reply.isError() and reply.exception_code == 2, hex(address)
    wrong_fc = await unit.client.read_input_registers(0x9000, count=1, device_id=1)
    assert wrong_fc.isError() and wrong_fc.exception_code == 2  # [TD]: 0x9xxx with FC04 is exception 02


async def test_the_reference_frames_are_taken_and_read_back(unit: Unit) -> None:
    for text in (
        "01 10 90 3D 00 03 06 00 02 02 00 02 00",  # [V2.5]: mode 2 (light on + timer), 2 h, 2 h
        "01 10 90 65 00 01 02 0A 00",  # [V2.5]: night length 10 h
        "01 10 90 1E 00 04 08 01 F4 00 0A 02 58 00 0A",  # [V2.5]: 5.00 V, 10 min, 6.00 V, 10 min
    ):
        address, values = frame(text)
        reply = await unit.write(address, values)
        assert not reply.isError(), (text, reply)
        assert await unit.holding(address, len(values)) == values
    assert unit.plant.settings.nv_writes == 3


async def test_the_clock_is_set_in_one_write_of_three_and_keeps_time(unit: Unit) -> None:
    address, values = frame("01 10 90 13 00 03 06 30 35 13 00 0F 06")  # [CAP]: the PC software sets the clock
    assert not (await unit.write(address, values)).isError()
    assert await unit.holding(0x9013, 3) == [0x3035, 0x1300, 0x0F06]  # 48 min 53 s; day 19, 00 h; 2015-06
    unit.plant.advance(67)
    mmss, ddhh, yymm = await unit.holding(0x9013, 3)
    assert dt.datetime(2000 + (yymm >> 8), yymm & 0xFF, ddhh >> 8, ddhh & 0xFF, mmss >> 8, mmss & 0xFF) == (
        dt.datetime(2015, 6, 19, 0, 50, 0)
    )
    for single in ((0x9013, [0x3035]), (0x9014, [0x1300, 0x0F06])):  # [V2.3]: written simultaneously
        reply = await unit.write(*single)
        assert reply.isError() and reply.exception_code == 4


async def test_a_single_or_partial_voltage_write_is_exception_04_and_changes_nothing(unit: Unit) -> None:
    await unit.make_user_type()
    before = await unit.holding(0x9000, 15)
    refused = (
        await unit.write(0x9009, [1320]),  # [forum-04]: FC10 of one register at 0x9009, type User: 01 90 04
        await unit.write_single(0x900D, 1150),  # kasbert#28: LVD alone, "SlaveFailure"
        await unit.write(0x900A, [1270, 1230, 1210, 1150]),  # a part of the block
    )
    for reply in refused:
        assert reply.isError() and reply.exception_code == 4, reply
    assert await unit.holding(0x9000, 15) == before
    assert not (await unit.write(0x9003, voltages(LVD=1150))).isError()  # fatyogi#3: the 12 in one FC10
    assert (await unit.holding(0x900D))[0] == 1150


async def test_type_user_is_refused_while_the_rated_voltage_is_auto(unit: Unit) -> None:
    for reply in (await unit.write(0x9000, [0]), await unit.write(0x9000, [0, *SEALED_12V[1:]])):
        assert reply.isError() and reply.exception_code == 4  # [V2.5] warning; [TD]'s unit has 0x9067 = 0
    assert await unit.holding(0x9000, 15) == SEALED_12V
    await unit.make_user_type()
    assert await unit.holding(0x9000) == [0]
    back_to_auto = await unit.write_single(0x9067, 0)
    assert back_to_auto.isError() and back_to_auto.exception_code == 4
    assert await unit.holding(0x9067) == [1]


async def test_voltages_need_battery_type_user_or_lithium(unit: Unit) -> None:
    sealed = await unit.write(0x9003, voltages(LVD=1150))  # [V2.5]: with sealed only a few settings can be set
    whole = await unit.write(0x9000, [1, 100, 300, *voltages(LVD=1150)])
    for reply in (sealed, whole):
        assert reply.isError() and reply.exception_code == 4
    assert await unit.holding(0x9000, 15) == SEALED_12V
    assert not (await unit.write(0x9000, [4])).isError()  # LiFePO4 (bkuschak: a lithium type takes voltages)
    assert not (await unit.write(0x9003, voltages(LVD=1150))).isError()
    assert not (await unit.write(0x9067, [1])).isError()
    whole_user = [0, 200, 300, *voltages(LVD=1140)]  # type User with the block, as Bettapro's firmware writes it
    assert not (await unit.write(0x9000, whole_user)).isError()
    assert await unit.holding(0x9000, 15) == whole_user


@pytest.mark.parametrize(
    "changes",
    [
        {"OVD": 1500},  # OVD > OVR and OVD > CLV: equal is not enough
        {"CLV": 1450},  # CLV >= EQV
        {"BST": 1470},  # EQV >= BST
        {"FLT": 1450},  # BST >= FLT
        {"BRV": 1380},  # FLT > BRV
        {"LVR": 1320},  # BRV > LVR
        {"LVD": 1260, "UVW": 1270, "UVWR": 1280},  # LVR > LVD
        {"DLV": 1120},  # LVD >= DLV
        {"UVWR": 1200},  # UVWR > UVW
        {"UVW": 1110},  # UVW > LVD ([V2.5])
        {"LVD": 1210},  # above UVW
    ],
    ids=lambda changes: ",".join(f"{k}={v}" for k, v in changes.items()),
)
async def test_a_block_out_of_order_is_exception_04_and_changes_nothing(unit: Unit, changes: dict[str, int]) -> None:
    await unit.make_user_type()
    before = await unit.holding(0x9000, 15)
    reply = await unit.write(0x9003, voltages(**changes))
    assert reply.isError() and reply.exception_code == 4
    assert await unit.holding(0x9000, 15) == before


@pytest.mark.parametrize(
    "changes",
    [
        {"CLV": 1455, "EQV": 1455, "OVR": 1455},  # bkuschak's Tracer1210AN: charging limit = equalize
        {"LVD": 1130, "DLV": 1130},  # and LVD = discharging limit
        {"LVD": 1290, "UVW": 1295, "UVWR": 1300, "LVR": 1310},  # the reference's mechanism B: all raised in order
    ],
    ids=["CLV=EQV", "LVD=DLV", "raised"],
)
async def test_a_block_in_order_is_taken(unit: Unit, changes: dict[str, int]) -> None:
    await unit.make_user_type()
    assert not (await unit.write(0x9003, voltages(**changes))).isError()
    assert await unit.holding(0x9003, 12) == voltages(**changes)


async def test_the_single_writes_real_units_take(unit: Unit) -> None:
    for address, value in ((0x9000, 2), (0x9001, 200), (0x9002, 250), (0x903D, 1), (0x906A, 0), (0x906B, 60),
                           (0x906C, 90), (0x9065, 0x0A00), (0x9067, 1)):  # fmt: skip
        for write in (unit.write(address, [value]), unit.write_single(address, value)):  # FC10, then FC06
            assert not (await write).isError(), hex(address)
        assert await unit.holding(address) == [value]
    assert unit.plant.settings.nv_writes == 18


async def test_a_write_outside_the_settings_is_exception_02(unit: Unit) -> None:
    for address, values in ((0x900F, [0]), (0x9000, [*SEALED_12V, 0]), (0x9066, [1])):
        reply = await unit.write(address, values)
        assert reply.isError() and reply.exception_code == 2, hex(address)
    assert unit.plant.settings.nv_writes == 0


async def test_settings_survive_a_restart_and_coil_2_comes_from_0x906a(unit: Unit) -> None:
    await unit.make_user_type()
    assert not (await unit.write(0x9003, voltages(LVD=1150))).isError()
    assert not (await unit.write_single(0x906A, 0)).isError()  # manual default: off
    assert await unit.coil(True) is True
    settings = await unit.holding(0x9000, 15), await unit.holding(0x9069, 6)
    writes = unit.plant.settings.nv_writes
    unit.sim.restart()
    assert (await unit.holding(0x9000, 15), await unit.holding(0x9069, 6)) == settings
    assert await unit.coil() is False  # [VS-man]: "Manual OFF: the load stays off after the controller is initialized"
    assert await unit.status() == (0, False)  # 0x3202 D0: the load does not run
    assert await unit.load_registers() == [0, 0, 0, 0]
    assert not (await unit.write_single(0x906A, 1)).isError()
    assert await unit.coil(False) is False
    unit.sim.restart()
    assert await unit.coil() is True  # [VS-man]: "Manual ON (default): the load opens ... after initialized"
    assert (await unit.status())[1] is True
    assert unit.plant.settings.nv_writes == writes + 1  # the coil writes are not counted as settings writes
