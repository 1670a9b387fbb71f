"""The register-map language every Modbus family writes its map in: reads planned within a device's blocks, words
decoded low word first, signed and scaled."""

from __future__ import annotations

import pytest

from nutbridge.devices.modbus_map import MAX_READ, Block, Register, Request, Table, coalesced, decode, encode, plan

# A device of another family: two input blocks with a gap between them, and one holding block.
BLOCKS = (Block(Table.INPUT, 0x0000, 4), Block(Table.INPUT, 0x0010, 6), Block(Table.HOLDING, 0x0000, 2))


def test_one_read_per_block_touched_spanning_only_the_registers_asked() -> None:
    registers = [
        Register(field="c", address=0x0012, words=2),
        Register(field="a", address=0x0001),
        Register(field="s", address=0x0001, table=Table.HOLDING),
        Register(field="b", address=0x0002),
        Register(field="d", address=0x0014),
    ]
    assert plan(registers, BLOCKS) == (
        Request(Table.HOLDING, 0x0001, 1),
        Request(Table.INPUT, 0x0001, 2),
        Request(Table.INPUT, 0x0012, 3),  # not from 0x0002 across the gap: a strict device answers exception 02
    )


def test_coalesced_merges_reads_of_a_table_across_its_gaps_within_the_limit() -> None:
    gap_free = (
        Request(Table.INPUT, 0x0010, 3),
        Request(Table.HOLDING, 0x0001, 1),
        Request(Table.INPUT, 0x0001, 2),
        Request(Table.INPUT, 0x0070, 2),
        Request(Table.HOLDING, 0x0003, 1),
    )
    assert coalesced(gap_free) == (
        Request(Table.HOLDING, 0x0001, 3),
        Request(Table.INPUT, 0x0001, 0x0072 - 0x0001),  # never across tables: they are other function codes
    )
    assert coalesced(gap_free, limit=0x20) == (
        Request(Table.HOLDING, 0x0001, 3),
        Request(Table.INPUT, 0x0001, 0x0013 - 0x0001),
        Request(Table.INPUT, 0x0070, 2),  # 0x0001 to 0x0071 would be more than 0x20 registers
    )


def test_coalesced_stays_within_what_one_modbus_read_may_ask() -> None:
    apart = (Request(Table.INPUT, 0, 1), Request(Table.INPUT, MAX_READ - 1, 1), Request(Table.INPUT, MAX_READ, 1))
    assert MAX_READ == 125  # FC03/FC04's largest count in the Modbus specification
    assert coalesced(apart) == (Request(Table.INPUT, 0, MAX_READ), Request(Table.INPUT, MAX_READ, 1))


@pytest.mark.parametrize(
    "register",
    [
        Register(field="gap", address=0x0008),
        Register(field="straddles", address=0x0003, words=2),  # its high word is past the block
        Register(field="wrong table", address=0x0012, table=Table.HOLDING),
    ],
)
def test_a_register_outside_every_block_is_a_bug_in_the_map(register: Register) -> None:
    with pytest.raises(ValueError, match=f"register {register.field} at {register.address:#06x} lies outside"):
        plan([register], BLOCKS)


def test_decode_low_word_first_signed_and_soc_scale() -> None:
    regs = [
        Register(field="pv_power", address=0x3102, words=2),
        Register(field="battery_current", address=0x331B, words=2, signed=True),
        Register(field="battery_charge", address=0x311A, scale=1),
        Register(field="battery_temperature", address=0x3110, signed=True),
    ]
    words = {
        (Table.INPUT, 0x3102): 0x86A0,  # 100000 = 0x000186A0 → 1000.00 W
        (Table.INPUT, 0x3103): 0x0001,
        (Table.INPUT, 0x331B): 0xFFCE,  # -50 → -0.50 A
        (Table.INPUT, 0x331C): 0xFFFF,
        (Table.INPUT, 0x311A): 70,  # a plain percentage
        (Table.INPUT, 0x3110): 61536,  # -40.00 °C
    }
    assert decode(regs, words) == {
        "pv_power": 1000.0,
        "battery_current": -0.5,
        "battery_charge": 70,
        "battery_temperature": -40.0,
    }


def test_a_value_too_wide_for_its_words_wraps_as_the_device_would() -> None:
    reg = Register(field="x", address=0x0010, scale=1)
    assert encode([reg], {"x": 70000}) == {(Table.INPUT, 0x0010): 70000 & 0xFFFF}
    assert encode([reg], {}) == {}  # a field without a value is left out
