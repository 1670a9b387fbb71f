"""``[source] coalesce``: a poll in 3 reads across the register map's gaps where the unit answers them, the 6
gap-free reads where it refuses (probed once, falling back within the same poll), against the simulator over a real
socket, strict (EPEver's documented blocks, exception 02 elsewhere) or lenient (the gaps read zero). The requests
are counted where a user would see them: on the device's side."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import fields

import pytest

from nutbridge.devices.modbus import ModbusTarget
from nutbridge.devices.tracer.source import TracerSource
from nutbridge.errors import ProtocolError, SourceError
from nutbridge.model import Reading
from nutbridge.simulator.physics import Mode, Plant
from nutbridge.simulator.server import SimulatedTracer, live_values

FC04 = 4
# The poll's registers (devices/tracer/registers.py) in EPEver's gap-free blocks, and across the gaps.
GAP_FREE = [(FC04, 0x3100, 4), (FC04, 0x310C, 6), (FC04, 0x311A, 1), (FC04, 0x3200, 3), (FC04, 0x3302, 18)]
GAP_FREE += [(FC04, 0x331A, 3)]
COALESCED = [(FC04, 0x3100, 27), (FC04, 0x3200, 3), (FC04, 0x3302, 27)]  # 0x3100-0x311A, 0x3302-0x331C


@pytest.fixture(params=[False, True], ids=["strict", "lenient"])
async def unit(request: pytest.FixtureRequest) -> AsyncIterator[SimulatedTracer]:
    """A simulated Tracer whose clock stands still (speed 0), so every poll reads the same values."""
    async with SimulatedTracer(Plant(mode=Mode.SUN, soc=70), speed=0, lenient=request.param) as sim:
        sim.reads = []
        await sim.start_tcp("127.0.0.1", 0)
        yield sim


def tracer(sim: SimulatedTracer, coalesce: bool | None) -> TracerSource:
    return TracerSource(ModbusTarget(scheme="tcp", host="127.0.0.1", port=sim.port), timeout=0.3, coalesce=coalesce)


async def polled(source: TracerSource, sim: SimulatedTracer) -> tuple[Reading, list[tuple[int, int, int]]]:
    """One poll (connecting first if need be, rated data not counted) and the reads the unit was asked."""
    if not source.connected:
        await source.connect()
    assert sim.reads is not None
    before = len(sim.reads)
    reading = await source.read()
    return reading, sim.reads[before:]


def assert_the_units_values(reading: Reading, sim: SimulatedTracer) -> None:
    """Every polled value is the one the simulated unit holds in its documented register, to its resolution."""
    held = live_values(sim.plant)
    for f in fields(Reading):
        if f.name in held:
            assert getattr(reading, f.name) == pytest.approx(held[f.name], abs=0.006), f.name


def fallbacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "nutbridge.devices.tracer.source"]


@pytest.mark.parametrize("unit", [False], indirect=True, ids=["strict"])
async def test_auto_on_a_strict_unit_falls_back_within_the_first_poll_and_says_so_once(
    unit: SimulatedTracer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with tracer(unit, None) as source:
        first, reads = await polled(source, unit)
        assert reads == [COALESCED[0], *GAP_FREE]  # the probe, refused, then the gap-free poll: no poll lost
        assert_the_units_values(first, unit)
        for _ in range(3):
            assert (await polled(source, unit))[1] == GAP_FREE
        await source.reset()  # a new connection: the decision holds for the process, no second probe
        assert (await polled(source, unit))[1] == GAP_FREE
    [line] = fallbacks(caplog)
    assert "exception 2 reading 27 registers at 0x3100" in line  # which read failed
    assert "coalesce = false in [source]" in line  # and how to skip the probe


@pytest.mark.parametrize("unit", [True], indirect=True, ids=["lenient"])
async def test_auto_on_a_lenient_unit_reads_three_times_with_the_gap_free_values(
    unit: SimulatedTracer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with tracer(unit, None) as coalescing, tracer(unit, False) as gap_free:
        reading, reads = await polled(coalescing, unit)
        assert reads == COALESCED
        assert (await polled(coalescing, unit))[1] == COALESCED
        await coalescing.reset()  # a new connection probes again, and passes
        assert (await polled(coalescing, unit))[1] == COALESCED
        same, reads = await polled(gap_free, unit)
        assert reads == GAP_FREE
    assert_the_units_values(reading, unit)
    assert {f.name: getattr(reading, f.name) for f in fields(Reading) if f.name != "time"} == {
        f.name: getattr(same, f.name) for f in fields(Reading) if f.name != "time"
    }
    assert fallbacks(caplog) == []


@pytest.mark.parametrize(
    ("unit", "coalesce", "expected"),
    [(False, False, GAP_FREE), (True, False, GAP_FREE), (True, True, COALESCED)],
    indirect=["unit"],
    ids=["strict-false", "lenient-false", "lenient-true"],
)
async def test_false_reads_gap_free_and_true_across_the_gaps_on_a_unit_that_answers(
    unit: SimulatedTracer, coalesce: bool, expected: list[tuple[int, int, int]]
) -> None:
    async with tracer(unit, coalesce) as source:
        reading, reads = await polled(source, unit)
    assert reads == expected  # false never reads across a gap, even on a unit that would answer
    assert_the_units_values(reading, unit)


@pytest.mark.parametrize("unit", [False], indirect=True, ids=["strict"])
async def test_true_on_a_strict_unit_is_a_failed_poll_that_says_why(unit: SimulatedTracer) -> None:
    async with tracer(unit, True) as source:
        for _ in range(2):  # no fallback: every poll fails the same way
            with pytest.raises(ProtocolError, match=r"exception 2 reading 27 registers at 0x3100: coalesce = true "
                               r"reads across the register map's gaps, which this unit refuses; set coalesce = auto "
                               r"or false"):  # fmt: skip
                await source.read()
            assert not source.connected


@pytest.mark.parametrize("unit", [True], indirect=True, ids=["lenient"])
@pytest.mark.parametrize(
    ("deadline", "said"),
    [(None, "no answer reading 0x3100"), (0.1, "no answer to a coalesced read before the poll's deadline")],
    ids=["the link's timeout", "the poll's deadline first"],
)
async def test_a_probe_with_no_answer_falls_back_too(
    unit: SimulatedTracer, caplog: pytest.LogCaptureFixture, deadline: float | None, said: str
) -> None:
    caplog.set_level(logging.INFO)
    async with tracer(unit, None) as source:
        await source.connect()
        unit.plant.set_mode(Mode.SILENT)  # the unit answered its rated data, then nothing
        with pytest.raises((SourceError, TimeoutError)):
            async with asyncio.timeout(deadline):  # the monitor's, when shorter than the link's timeout (0.3 s)
                await source.read()
        unit.plant.set_mode(Mode.SUN)
        await source.reset()  # what the monitor does after a failed attempt
        assert (await polled(source, unit))[1] == GAP_FREE
    [line] = fallbacks(caplog)
    assert said in line
