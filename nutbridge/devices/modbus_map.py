"""The register-map language every Modbus family writes its map in, and the pure code that walks it: a register is a
row (table, address, words, scale, sign), a device's blocks are the runs of addresses it defines, and ``plan`` makes
the fewest reads that cover a set of registers without a read ever spanning two blocks (a strict device answers
exception 02 past a block's end); ``coalesced`` merges such reads across the gaps, for a device that tolerates
them (the caller probes it and falls back). Nothing here does I/O: the link is modbus_link.py, a family's map is
data in its own folder (devices/tracer/registers.py).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


class Table(enum.IntEnum):
    """A Modbus register table, by the function code that reads it."""

    HOLDING = 3
    INPUT = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Register:
    """One value: ``words`` 16-bit registers from ``address``, low word first, times ``scale``."""

    field: str
    address: int
    table: Table = Table.INPUT
    words: int = 1
    scale: float = 0.01
    signed: bool = False


@dataclass(frozen=True, slots=True)
class Block:
    """A run of registers a device defines without gaps; a strict device answers exception 02 past it."""

    table: Table
    address: int
    count: int

    def holds(self, reg: Register) -> bool:
        """True when every word of ``reg`` lies inside this block."""
        return reg.table == self.table and self.address <= reg.address <= self.end - reg.words

    @property
    def end(self) -> int:
        """The first address after the block."""
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class Request:
    """One read: ``count`` registers of ``table`` from ``address``."""

    table: Table
    address: int
    count: int


# The most registers one read may ask for (Modbus: 125 for FC03/FC04).
MAX_READ = 125

# Raw 16-bit words as read, by (table, address): what ``decode`` takes and ``encode`` gives.
Words = Mapping[tuple[Table, int], int]


def block_of(reg: Register, blocks: Sequence[Block]) -> Block:
    """The block of ``blocks`` that holds ``reg``; a row outside every block is a bug in the map."""
    for block in blocks:
        if block.holds(reg):
            return block
    raise ValueError(f"register {reg.field} at {reg.address:#06x} lies outside every defined block")


def plan(registers: Iterable[Register], blocks: Sequence[Block]) -> tuple[Request, ...]:
    """The fewest gap-free reads that cover ``registers``: one per block touched, spanning only it."""
    spans: dict[Block, tuple[int, int]] = {}
    for reg in registers:
        block = block_of(reg, blocks)
        lo, hi = spans.get(block, (reg.address, reg.address + reg.words))
        spans[block] = (min(lo, reg.address), max(hi, reg.address + reg.words))
    return tuple(
        Request(block.table, lo, hi - lo)
        for block, (lo, hi) in sorted(spans.items(), key=lambda kv: (kv[0].table, kv[0].address))
    )


def coalesced(requests: Iterable[Request], limit: int = MAX_READ) -> tuple[Request, ...]:
    """``requests`` merged, in address order, into as few reads as keep each within ``limit`` registers: a read
    of one table may then span addresses no block defines. Only for a device that answers those (zeros or
    anything: ``decode`` takes named registers only); a strict one refuses them with exception 02."""
    merged: list[Request] = []
    for req in sorted(requests, key=lambda r: (r.table, r.address)):
        last = merged[-1] if merged else None
        end = req.address + req.count
        if last is not None and last.table == req.table and end - last.address <= limit:
            merged[-1] = Request(last.table, last.address, max(end, last.address + last.count) - last.address)
        else:
            merged.append(req)
    return tuple(merged)


def decode(registers: Iterable[Register], words: Words) -> dict[str, float]:
    """Turn raw 16-bit words, keyed by (table, address), into scaled values keyed by field name."""
    values: dict[str, float] = {}
    for reg in registers:
        raw = 0
        for i in range(reg.words):  # low word first
            raw |= words[reg.table, reg.address + i] << (16 * i)
        bits = 16 * reg.words
        if reg.signed and raw >= 1 << (bits - 1):
            raw -= 1 << bits
        values[reg.field] = round(raw * reg.scale, 6)
    return values


def encode(registers: Iterable[Register], values: Mapping[str, float]) -> dict[tuple[Table, int], int]:
    """The inverse of ``decode``: raw words for scaled values (used by the simulator)."""
    words: dict[tuple[Table, int], int] = {}
    for reg in registers:
        if reg.field not in values:
            continue
        raw = round(values[reg.field] / reg.scale) & ((1 << (16 * reg.words)) - 1)
        for i in range(reg.words):
            words[reg.table, reg.address + i] = (raw >> (16 * i)) & 0xFFFF
    return words
