"""Shared fixtures: a real simulated Tracer on a loopback port, a port file to write, a TLS certificate."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from nutbridge.devices.modbus import ModbusTarget
from nutbridge.devices.tracer.source import TracerSource
from nutbridge.peers.addresses import AddressPolicy
from nutbridge.simulator.physics import Mode, Plant
from nutbridge.simulator.server import SimulatedTracer
from tests.helpers.zone import local_zone

IN_CI = os.environ.get("CI") == "true"

# The ranges the tests' peers live at: loopback and the documentation ranges (RFC 5737, RFC 3849). A node's
# default policy refuses them all, as [peers] allow_addresses = [] does.
TEST_RANGES = ["127.0.0.0/8", "::1/128", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]
TEST_POLICY = AddressPolicy.from_ranges(TEST_RANGES)


def need(condition: bool, why: str) -> None:
    """Skip when a real part is missing, except in CI, where it must be there."""
    if not condition:
        if IN_CI:
            pytest.fail(f"CI must have this: {why}")
        pytest.skip(why)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedTracer]:
    """A simulated Tracer in full sun at noon, listening on an ephemeral loopback port."""
    tracer = SimulatedTracer(Plant(mode=Mode.SUN, soc=70))
    await tracer.start_tcp("127.0.0.1", 0)
    yield tracer
    await tracer.stop()


@pytest.fixture
async def source(sim: SimulatedTracer) -> AsyncIterator[TracerSource]:
    """A Tracer source connected to ``sim`` over Modbus TCP, with a short timeout."""
    target = ModbusTarget(scheme="tcp", host="127.0.0.1", port=sim.port)
    async with TracerSource(target, timeout=0.3) as tracer:
        yield tracer


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files), made with the openssl command for a day."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
            *("-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def port_file(tmp_path: Path) -> Path:
    """An existing port file with a comment and a hand-set value."""
    path = tmp_path / "solar.dev"
    path.write_text("# written by hand\nbattery.charge.low: 25\n")
    return path


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` unwritable: chmod for a user, a read-only bind mount for root (who ignores modes)."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)
        return
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def daemon_config(folder: Path, extra: str, poll_interval: float = 0.5) -> Path:
    """A config file for a daemon on the built-in simulator (sun at noon) writing ``folder``/solar.dev, plus
    ``extra`` sections; 0600, since the extras may hold secrets."""
    (folder / "solar.dev").write_text("")
    toml = folder / "nutbridge.toml"
    toml.write_text(
        f'[source]\nkind = "simulator"\nstart = "12:00"\n[monitor]\npoll_interval = {poll_interval}\n'
        f'[nut]\nport_file = "solar.dev"\nversion = "2.8.0"\n{extra}'
    )
    toml.chmod(0o600)
    return toml


@pytest.fixture
def midday_zone() -> Iterator[str]:
    """A time zone where it is now about noon, made this process's local zone (and so its children's, a daemon's):
    a test of today's day file that runs just after local midnight would otherwise see a day of a few minutes.
    Etc/GMT's sign is the other way round: Etc/GMT-12 is twelve hours east of UTC."""
    east = 12 - dt.datetime.now(dt.UTC).hour  # -11 .. +12 hours, every one an Etc/GMT zone
    with local_zone(f"Etc/GMT{-east:+d}" if east else "Etc/GMT") as zone:
        yield zone
