"""The power cycle on a simulated Tracer over a real socket: `nutbridge killpower` run as a user runs it, the
registers read over Modbus as a user would check them. Expected values come from the reference's rules
(shared/reference/epever-load-control.md) and [TD]'s defaults, which the simulator starts with."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes

from nutbridge.devices.base import Opening
from nutbridge.devices.modbus import parse_modbus_url
from nutbridge.devices.tracer.config import TracerConfig
from nutbridge.devices.tracer.family import FAMILY
from nutbridge.simulator.physics import Mode, Plant
from nutbridge.simulator.server import SimulatedTracer

UPS = "solar"
TD_BLOCK = [1, 100, 300, 1600, 1500, 1500, 1460, 1440, 1380, 1320, 1260, 1220, 1200, 1110, 1060]
BRV, LVR, UVWR, UVW, LVD, DLV = range(9, 15)


class RefusingTracer(SimulatedTracer):
    """A unit that refuses the voltage block (exception 04), as the reference says an out-of-order or unexpected
    block may be."""

    def _write(self, fc: int, address: int, values: list[int]) -> ExcCodes | None:
        if address == 0x9003:
            return ExcCodes(4)  # slave device failure, as [forum-04] captured
        return super()._write(fc, address, values)


@dataclass
class Rig:
    sim: SimulatedTracer
    client: AsyncModbusTcpClient
    folder: Path
    config: Path

    @property
    def plant(self) -> Plant:
        return self.sim.plant

    @property
    def record(self) -> Path:
        return self.folder / f"nutbridge-{UPS}.controller"

    async def killpower(self, *flags: str) -> tuple[int, str]:
        env = dict(os.environ, NUT_STATEPATH=str(self.folder))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nutbridge", "killpower", UPS, "-c", str(self.config), *flags,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode()

    async def holding(self, address: int, count: int = 1) -> list[int]:
        reply = await self.client.read_holding_registers(address, count=count, device_id=1)
        assert not reply.isError(), reply
        return list(reply.registers)

    async def settings(self) -> dict[str, list[int]]:
        """0x9000 x15, 0x9067, 0x903D, 0x906A as a user reads them."""
        return {
            "block": await self.holding(0x9000, 15),
            "rated": await self.holding(0x9067),
            "mode": await self.holding(0x903D),
            "manual": await self.holding(0x906A),
        }

    async def load_runs(self) -> bool:
        """0x3202 D0: the load terminal is on."""
        reply = await self.client.read_input_registers(0x3202, count=1, device_id=1)
        assert not reply.isError(), reply
        return bool(reply.registers[0] & 1)


async def rig_for(sim: SimulatedTracer, tmp_path: Path, cycle: bool = True) -> Rig:
    await sim.start_tcp("127.0.0.1", 0)
    config = tmp_path / f"nutbridge-{UPS}.toml"
    config.write_text(
        f'[source]\nkind = "tracer"\nurl = "tcp://127.0.0.1:{sim.port}"\n[power]\ncycle = {str(cycle).lower()}\n'
    )
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=2, retries=0)
    assert await client.connect()
    return Rig(sim, client, tmp_path, config)


def night_plant() -> Plant:
    """Night, the 15 W load on, the battery near 11.9 V under load."""
    plant = Plant(mode=Mode.NIGHT, soc=70)
    plant.set_resting_voltage(12.05)
    return plant


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await rig_for(SimulatedTracer(night_plant(), speed=0), tmp_path)
    yield r
    r.client.close()
    await r.sim.stop()


async def test_the_whole_cycle(rig: Rig) -> None:
    before = await rig.settings()
    assert before["block"] == TD_BLOCK
    assert await rig.load_runs()
    reply = await rig.client.read_input_registers(0x331A, count=1, device_id=1)
    present = reply.registers[0]
    assert 1150 < present < 1220

    status, out = await rig.killpower()
    assert status == 0, out
    assert not await rig.load_runs()  # the controller's own LVD cut the load terminal
    armed = await rig.settings()
    block = armed["block"]
    assert block[0] == 0  # User
    assert armed["rated"] == [1]  # 12 V, set before User (User with auto is refused)
    assert block[LVD] > present
    assert block[LVR] == 1280  # [power] return_voltage's default, below the boost reconnect 13.20 V
    assert block[BRV] > block[LVR] > block[LVD] >= block[DLV]
    assert block[UVWR] > block[UVW] > block[LVD]
    assert block[3:9] == TD_BLOCK[3:9]  # the charging voltages untouched
    assert json.loads(rig.record.read_text())["controller"]["block"] == TD_BLOCK
    assert rig.plant.settings.nv_writes == 3  # 0x9067, 0x9000, the voltage block

    rig.plant.set_mode(Mode.SUN)
    for _ in range(24 * 60):
        rig.plant.advance(60)
        if await rig.load_runs():
            break
    assert await rig.load_runs()  # back by the controller's own LVR
    reply = await rig.client.read_input_registers(0x331A, count=1, device_id=1)
    assert reply.registers[0] >= 1280

    status, out = await rig.killpower("--restore")
    assert status == 0, out
    assert await rig.settings() == before
    assert rig.plant.settings.nv_writes == 6  # the cycle's cost: 3 to arm, 3 to restore
    assert not rig.record.exists()
    assert (rig.folder / f"nutbridge-{UPS}.controller.restored").exists()


async def test_dry_run_writes_nothing(rig: Rig) -> None:
    before = await rig.settings()
    status, out = await rig.killpower("--dry-run")
    assert status == 0, out
    assert "0x900d (low-voltage disconnect): 1110 →" in out
    assert await rig.settings() == before
    assert rig.plant.settings.nv_writes == 0
    assert not rig.record.exists()
    assert await rig.load_runs()


async def test_a_second_arm_keeps_the_first_record(rig: Rig) -> None:
    before = await rig.settings()
    assert (await rig.killpower())[0] == 0
    first = rig.record.read_text()
    status, out = await rig.killpower()
    assert status == 0, out
    assert "kept" in out
    assert rig.record.read_text() == first
    assert (await rig.killpower("--restore"))[0] == 0
    assert await rig.settings() == before


async def test_restore_without_a_record_changes_nothing(rig: Rig) -> None:
    before = await rig.settings()
    status, out = await rig.killpower("--restore")
    assert status == 0, out
    assert "no record" in out
    assert await rig.settings() == before
    assert rig.plant.settings.nv_writes == 0


async def test_cycle_off_is_refused(tmp_path: Path) -> None:
    r = await rig_for(SimulatedTracer(night_plant(), speed=0), tmp_path, cycle=False)
    try:
        status, out = await r.killpower()
        assert status == 78
        assert "cycle = true" in out
        assert r.plant.settings.nv_writes == 0
    finally:
        r.client.close()
        await r.sim.stop()


async def test_a_refused_block_is_not_armed_and_changes_nothing(tmp_path: Path) -> None:
    r = await rig_for(RefusingTracer(night_plant(), speed=0), tmp_path)
    try:
        before = await r.settings()
        status, out = await r.killpower()
        assert status == 1
        assert "not armed" in out
        assert await r.settings() == before
        assert await r.load_runs()
        assert not r.record.exists()  # nothing is left to restore
        assert r.plant.settings.nv_writes == 4  # 0x9067 and 0x9000 written, then put back
    finally:
        r.client.close()
        await r.sim.stop()


async def test_not_in_manual_mode_is_refused(rig: Rig) -> None:
    assert rig.plant.write(0x903D, [1]) is None  # light on/off, as an installer may have set it
    before = await rig.settings()
    writes = rig.plant.settings.nv_writes
    status, out = await rig.killpower()
    assert status == 1
    assert "0x903D" in out
    assert await rig.settings() == before
    assert rig.plant.settings.nv_writes == writes


async def test_the_daemon_start_restores_a_left_over_record(rig: Rig) -> None:
    before = await rig.settings()
    assert (await rig.killpower())[0] == 0
    assert await rig.settings() != before
    section = TracerConfig(url=parse_modbus_url(f"tcp://127.0.0.1:{rig.sim.port}", "test"))
    opening = Opening(state_dir=rig.folder, controller_record=rig.record)
    async with FAMILY.open(section, opening) as (source, _):
        assert await rig.settings() == before
        reading = await source.read()  # and it polls on
        assert (reading.battery_voltage or 0) > 0
    assert not rig.record.exists()


async def test_a_failed_restore_at_start_keeps_the_record_and_the_daemon_polls(rig: Rig) -> None:
    rig.record.write_text("not json\n")
    section = TracerConfig(url=parse_modbus_url(f"tcp://127.0.0.1:{rig.sim.port}", "test"))
    async with FAMILY.open(section, Opening(state_dir=rig.folder, controller_record=rig.record)) as (source, _):
        assert ((await source.read()).battery_voltage or 0) > 0
    assert rig.record.read_text() == "not json\n"
