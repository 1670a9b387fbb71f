"""The power cycle on a Tracer (docs/nut.md "Power back by itself"): record the controller's settings, arm its own
low-voltage disconnect and reconnect (cycle_plan.py), and restore the record exactly. Every write is read back.

The record is one small JSON file, ``nutbridge-<UPS>.controller`` in NUT's state folder (beside upsrw's
``.settings``), written before any change and never overwritten while it exists: a second arm before a restore
keeps the values from before the first. A restore that reads back equal renames it ``….controller.restored``
(one file, replaced by the next cycle's: the last cycle stays inspectable without a file per night on an SD card).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nutbridge.devices.modbus_link import ModbusLink
from nutbridge.devices.modbus_map import Request, Table
from nutbridge.devices.tracer.cycle_plan import (
    BLOCK,
    BLOCK_COUNT,
    LOAD_MODE,
    MANUAL_DEFAULT,
    RATED_CODE,
    Controller,
    CycleError,
    Plan,
    Write,
    address_name,
    nominal_volts,
    plan_arm,
    plan_restore,
)
from nutbridge.errors import ProtocolError, SourceError
from nutbridge.files import describe, replace_atomically, sync_folder

log = logging.getLogger(__name__)

BATTERY_VOLTS = 0x331A  # input register, V ×100
NOMINAL_VOLTS = 0x311D  # the battery's detected rated voltage, V ×100
LOAD_COIL = 2
MAX_RECORD = 4096


def record_file(folder: Path, ups: str) -> Path:
    """Where the controller's settings from before the cycle are kept."""
    return folder / f"nutbridge-{ups}.controller"


def restored_file(record: Path) -> Path:
    """Where a restored record goes."""
    return record.with_name(record.name + ".restored")


@dataclass(frozen=True, slots=True)
class Record:
    ups: str
    time: str
    controller: Controller


def read_record(path: Path) -> Record | None:
    """The record, or None when there is none; CycleError when it cannot be read or is not one of ours."""
    try:
        with path.open("rb") as file:
            data = json.loads(file.read(MAX_RECORD))  # ours is a few hundred bytes; more is not a record
        return Record(str(data["ups"]), str(data["time"]), Controller.from_json(data["controller"]))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CycleError(f"{path}: cannot read the controller's record: {describe(exc)}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise CycleError(f"{path}: not a controller record ({exc}); restore its settings by hand") from exc


def write_record(path: Path, ups: str, controller: Controller) -> bool:
    """Save ``controller`` unless a record exists (then False: the one from before the first arm stays)."""
    if path.exists():
        return False
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    data = {"ups": ups, "time": when, "controller": controller.to_json()}
    try:
        replace_atomically(path, (json.dumps(data, indent=1) + "\n").encode())
    except OSError as exc:
        raise CycleError(f"{path}: cannot record the controller's settings: {describe(exc)}; not armed") from exc
    return True


async def holding(link: ModbusLink, address: int, count: int = 1) -> list[int]:
    return await link.read(Request(Table.HOLDING, address, count))


async def read_controller(link: ModbusLink) -> Controller:
    """The settings the cycle touches; 0x906A only if the unit answers it (a refusal drops the link: reopened)."""
    block = await holding(link, BLOCK, BLOCK_COUNT)
    (rated,) = await holding(link, RATED_CODE)
    (mode,) = await holding(link, LOAD_MODE)
    try:
        manual: int | None = (await holding(link, MANUAL_DEFAULT))[0]
    except ProtocolError:
        manual = None
        await link.connect()
    return Controller(tuple(block), rated, mode, manual)


@dataclass
class Outcome:
    """What an arm or a restore did: the plan, the changes it made (address, old, new), the non-volatile writes
    it cost (each accepted write: the reference's assumption), and whether a record was written or kept."""

    plan: Plan
    changes: list[tuple[int, int, int]]
    nv_writes: int = 0
    recorded: bool = False
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"{address_name(a)}: {old} → {new}" for a, old, new in self.changes]


async def _apply(link: ModbusLink, writes: Sequence[Write], outcome: Outcome) -> None:
    for address, values in writes:
        await link.write(address, values)
        outcome.nv_writes += 1


def mismatches(expected: Controller, read: Controller) -> list[str]:
    """Registers whose read-back differs from ``expected`` (0x906A only when both have it)."""
    want, got = expected.registers(), read.registers()
    return [f"{address_name(a)} reads {got.get(a)}, not {v}" for a, v in want.items() if a in got and got[a] != v]


async def plan_for(link: ModbusLink, return_voltage: float) -> tuple[Controller, Plan]:
    """The settings now and the plan that arms the cycle from them (nothing written)."""
    before = await read_controller(link)
    (present,) = await link.read(Request(Table.INPUT, BATTERY_VOLTS, 1))
    (detected,) = await link.read(Request(Table.INPUT, NOMINAL_VOLTS, 1))
    nominal = nominal_volts(before.rated_code, detected / 100)
    plan = plan_arm(before, present / 100, nominal, return_voltage)
    if not await link.coil(LOAD_COIL, name="load"):
        raise CycleError("the load terminal is switched off by hand (coil 2 reads 0): the reconnect would not bring "
                         "it back; not armed")  # fmt: skip
    return before, plan


async def arm(link: ModbusLink, record: Path, ups: str, return_voltage: float, *, dry_run: bool = False) -> Outcome:
    """Record, then write the plan and read it back. Any refusal or mismatch puts back what this arm changed and
    raises CycleError ("not armed"). The function a shutdown hook or the driver's -k calls, on an open link."""
    before, plan = await plan_for(link, return_voltage)
    outcome = Outcome(plan, plan.changes(before))
    if dry_run:
        return outcome
    outcome.recorded = write_record(record, ups, before)
    if not outcome.recorded:
        outcome.notes.append(f"{record} kept: it holds the settings from before an earlier arm")
    try:
        await _apply(link, plan.writes, outcome)
        wrong = mismatches(plan.after, await read_controller(link))
        if wrong:
            raise CycleError("read back: " + "; ".join(wrong))
    except (CycleError, SourceError) as exc:
        raise CycleError(f"not armed: {exc}; {await _put_back(link, before, record, outcome)}") from exc
    return outcome


async def _put_back(link: ModbusLink, before: Controller, record: Path, outcome: Outcome) -> str:
    """Undo a failed arm: write ``before`` back and read it. Says what became of the controller and record."""
    try:
        now = await read_controller(link)
        undo = plan_restore(now, before)
        await _apply(link, undo.writes, outcome)
        wrong = mismatches(before, await read_controller(link))
    except (CycleError, SourceError) as exc:
        wrong = [str(exc)]
    if wrong:
        return f"putting the settings back failed ({'; '.join(wrong)}): {record} keeps them; run --restore"
    if outcome.recorded:
        _forget(record)  # nothing is left changed: no record to restore at the next start
    return f"every register reads as before ({outcome.nv_writes} non-volatile writes)"


async def restore(link: ModbusLink, record: Path) -> Outcome | None:
    """Write the recorded settings back and read them; on success the record is moved aside. None when there is
    no record (nothing changed); CycleError when the controller does not read back equal (the record is kept)."""
    kept = read_record(record)
    if kept is None:
        return None
    now = await read_controller(link)
    plan = plan_restore(now, kept.controller)
    outcome = Outcome(plan, plan.changes(now))
    try:
        await _apply(link, plan.writes, outcome)
        wrong = mismatches(kept.controller, await read_controller(link))
    except SourceError as exc:
        wrong = [str(exc)]
    if wrong:
        raise CycleError(f"not restored: {'; '.join(wrong)}; {record} is kept, from {kept.time}")
    _set_aside(record)
    return outcome


def _forget(record: Path) -> None:
    record.unlink(missing_ok=True)
    sync_folder(record.parent)


def _set_aside(record: Path) -> None:
    """The restored record out of the next start's way, kept for a look."""
    try:
        record.replace(restored_file(record))
        sync_folder(record.parent)
    except OSError as exc:
        raise CycleError(f"restored, but {record} could not be moved aside: {describe(exc)}") from exc
