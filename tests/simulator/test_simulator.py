"""The standalone simulator: a real process speaking Modbus TCP, steered by commands on stdin."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from nutbridge.devices.modbus import parse_modbus_url
from nutbridge.devices.tracer.source import TracerSource
from nutbridge.errors import SourceError
from nutbridge.simulator.control import apply
from nutbridge.simulator.physics import Mode, Plant


@pytest.fixture
def simulator() -> Iterator[tuple[subprocess.Popen[str], int]]:
    with started() as running:
        yield running


@contextlib.contextmanager
def started(*args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``python -m nutbridge.simulator`` in full sun on an ephemeral port, with ``args``: the process and port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nutbridge.simulator", "--listen", "127.0.0.1:0", "--mode", "sun", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("listening on 127.0.0.1:"), first
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith("simulator: mode sun")
    yield proc, int(first.split(":")[1].split()[0])
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)  # also closes the pipes


def command(proc: subprocess.Popen[str], text: str) -> str:
    assert proc.stdin is not None and proc.stderr is not None
    try:
        proc.stdin.write(text + "\n")
        proc.stdin.flush()
    except BrokenPipeError:  # it died before it could read: the same failure as dying before answering
        raise AssertionError(f"the simulator exited (status {proc.wait(timeout=10)}) before reading {text!r}") from None
    while True:
        line = proc.stderr.readline()
        if not line:  # EOF: the simulator died; fail instead of reading nothing for ever
            raise AssertionError(f"the simulator exited (status {proc.wait(timeout=10)}) before answering {text!r}")
        if line.startswith(("simulator:", "unknown", "bad")):
            return line


async def test_standalone_simulator_is_steered_from_stdin(simulator: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = simulator
    async with TracerSource(parse_modbus_url(f"tcp://127.0.0.1:{port}", "t"), timeout=0.5) as tracer:
        assert (await tracer.read()).pv_power
        assert "mode night" in command(proc, "night")
        night = await tracer.read()
        assert night.pv_power == 0 and night.battery_current is not None and night.battery_current < 0
        assert "battery 10.0 %" in command(proc, "lowbatt")
        assert (await tracer.read()).battery_low
        command(proc, "fault")
        assert (await tracer.read()).faults
        command(proc, "silent")
        with pytest.raises(SourceError):
            await tracer.read()
        command(proc, "day")
        assert (await tracer.read()).battery_charge == 10
    assert command(proc, "explode").startswith("unknown command 'explode'")


async def test_lenient_answers_reads_across_the_gaps_with_zeros() -> None:
    with started("--lenient") as (_, port):
        target = parse_modbus_url(f"tcp://127.0.0.1:{port}", "t")
        async with TracerSource(target, timeout=0.5, coalesce=True) as tracer:
            assert (await tracer.read()).battery_charge == 70  # 3 reads, two of them across gaps
            assert tracer.link.client is not None
            gap = await tracer.link.client.read_input_registers(0x3108, count=4, device_id=1)
    assert not gap.isError() and gap.registers == [0, 0, 0, 0]


def test_a_dead_simulator_fails_the_command_instead_of_hanging(
    simulator: tuple[subprocess.Popen[str], int],
) -> None:
    proc, _ = simulator
    proc.kill()
    with pytest.raises(AssertionError, match="the simulator exited"):
        command(proc, "night")


def test_stops_on_sigterm(simulator: tuple[subprocess.Popen[str], int]) -> None:
    proc, _ = simulator
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_plant_follows_the_sun() -> None:
    plant = Plant(seconds=3 * 3600, soc=50)
    assert plant.pv_power() == 0
    plant.advance(3600)
    assert 48 < plant.soc < 50  # 15 W for an hour out of 1200 Wh
    plant.advance(3 * 3600)  # 07:00: sunrise
    assert 0 < plant.pv_power() < 100
    before = plant.soc
    plant.advance(5 * 3600)  # 12:00
    assert plant.pv_power() > 150
    assert plant.soc > before + 20
    assert plant.energy_in_today > 500


def test_commands() -> None:
    plant = Plant()
    assert "mode lowbatt" in apply(plant, "lowbatt") and plant.mode is Mode.LOWBATT
    apply(plant, "soc 55")
    assert plant.soc == 55
    assert apply(plant, "soc lots").startswith("bad value")
    assert "12:30" in apply(plant, "time 12:30")
    plant.load_w = 0.0
    assert apply(plant, "volts 11.05").endswith("11.05 V, PV 0 W, load 0 W, load terminal off (low-voltage disconnect)")
    plant.load_on = False
    assert apply(plant, "restart").endswith("load terminal off (low-voltage disconnect)") and plant.load_on
    assert "LVD 11.10 V, LVR 12.60 V" in apply(plant, "settings")


async def test_a_refused_write_is_an_exception_and_a_log_line_naming_the_rule() -> None:
    with started() as (proc, port):
        target = parse_modbus_url(f"tcp://127.0.0.1:{port}", "t")
        async with TracerSource(target, timeout=0.5) as tracer:
            await tracer.connect()
            assert tracer.link.client is not None
            reply = await tracer.link.client.write_registers(0x900D, [1150], device_id=1)  # LVD alone
        assert reply.isError() and reply.exception_code == 4
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.write("settings\n")
        proc.stdin.flush()
        lines = [proc.stderr.readline()]
        while lines[-1] and not lines[-1].startswith("simulator:"):  # up to the answer (or EOF)
            lines.append(proc.stderr.readline())
    assert len(lines) == 2, lines
    assert lines[0].startswith("WARNING nutbridge.simulator.server: refused FC16 write of 1 register(s) at 0x900d")
    assert "the voltages 0x9003-0x900E must be written together" in lines[0]
    assert "LVD 11.10 V" in lines[1] and "0 non-volatile writes" in lines[1]
