"""The Tracer's register map as data: the reads it plans (never past a block), its status bits."""

from __future__ import annotations

import pytest

from nutbridge.devices.modbus_map import Register, block_of, decode, encode, plan
from nutbridge.devices.tracer import registers as tmap
from nutbridge.model import ChargeStage


def test_full_poll_takes_at_most_seven_gap_free_requests() -> None:
    requests = plan(tmap.POLL_REGISTERS, tmap.BLOCKS)
    assert len(requests) <= 7
    for req in requests:
        blocks = [b for b in tmap.BLOCKS if b.table == req.table and b.address <= req.address < b.end]
        assert len(blocks) == 1, f"{req} starts outside a defined block"
        assert req.address + req.count <= blocks[0].end, f"{req} runs past its block into a gap"


def test_poll_covers_realtime_status_statistics_and_battery_blocks() -> None:
    touched = {block_of(r, tmap.BLOCKS).address for r in tmap.POLL_REGISTERS}
    assert touched == {0x3100, 0x310C, 0x311A, 0x3200, 0x3300, 0x331A}
    assert len(plan(tmap.POLL_REGISTERS, tmap.BLOCKS)) == len(touched)
    status = next(r for r in plan(tmap.POLL_REGISTERS, tmap.BLOCKS) if r.address == 0x3200)
    assert status.count == 3


def test_load_is_read_from_the_documented_registers_not_the_gap() -> None:
    by_field = {r.field: r for r in tmap.POLL_REGISTERS}
    assert by_field["load_voltage"].address == 0x310C
    assert by_field["load_power"].address == 0x310E
    assert all(not 0x3108 <= r.address <= 0x310B for r in tmap.POLL_REGISTERS)


def test_every_register_lies_inside_one_block() -> None:
    for reg in tmap.POLL_REGISTERS + tmap.INFO_REGISTERS:
        block_of(reg, tmap.BLOCKS)  # raises for a row outside every block


def test_a_row_outside_every_block_is_refused() -> None:
    with pytest.raises(ValueError, match="outside every defined block"):
        plan([Register(field="gap", address=0x3109)], tmap.BLOCKS)


def test_32_bit_values_are_read_in_one_request() -> None:
    for reg in tmap.POLL_REGISTERS:
        if reg.words == 2:
            req = next(
                q for q in plan(tmap.POLL_REGISTERS, tmap.BLOCKS) if q.address <= reg.address < q.address + q.count
            )
            assert reg.address + 2 <= req.address + req.count


def test_encode_is_the_inverse_of_decode() -> None:
    values = {"pv_power": 462.5, "battery_current": -12.34, "battery_charge": 55, "battery_temperature": -3.5}
    regs = [r for r in tmap.POLL_REGISTERS if r.field in values]
    regs.append(Register(field="battery_temperature", address=0x3110, signed=True))
    assert decode(regs, encode(regs, values)) == values


@pytest.mark.parametrize(
    ("battery", "charging", "discharging", "stage", "low", "faults"),
    [
        (0, 0b1, 1, ChargeStage.OFF, False, ()),
        (0, (2 << 2) | 1, 1, ChargeStage.BOOST, False, ()),
        (0, (1 << 2) | 1, 1, ChargeStage.FLOAT, False, ()),
        (2, 1, 1, ChargeStage.OFF, True, ()),  # under-voltage warning
        (3, 1, 0, ChargeStage.OFF, True, ()),  # low-voltage disconnect
        (1 << 4, 1, 1, ChargeStage.OFF, False, ("battery over-temperature",)),
        (0, (1 << 8) | 0b10 | 1, 1, ChargeStage.OFF, False, ("load short circuit",)),
        (0, 1 << 14, 1, ChargeStage.OFF, False, ()),  # PV "no power": night, not a fault
        (0, 0b10, 3 << 12, ChargeStage.OFF, False, ("load overload",)),  # D1 alone is no fault
    ],
)
def test_status_bits(
    battery: int, charging: int, discharging: int, stage: ChargeStage, low: bool, faults: tuple[str, ...]
) -> None:
    values = {"status_battery": battery, "status_charging": charging, "status_discharging": discharging}
    assert tmap.decode_status(values) == (stage, low, faults)
