"""The consumer list: a consumer registered in it is built from the configuration, entered, fed every poll and left
by the daemon, with nothing else wired for it; one whose section is off is never started; -s runs only the
entries that take its one poll. The daemon runs in this process, on its simulator."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import ClassVar, Self

import pytest

from nutbridge import consumers, daemon
from nutbridge.config import load, with_overrides
from nutbridge.consumers import Consumer, Wiring
from nutbridge.nut.portfile import PortFile
from nutbridge.sinks import Wants
from nutbridge.snapshot import Snapshot
from tests.conftest import daemon_config
from tests.helpers import GUARD

POLLS = 3  # the probe stops the daemon once it has this many


class Probe:
    """A consumer of the test's own: what happened to it, in order (``entered``, each poll's seq, ``left``).
    At its POLLS-th poll it sends the daemon SIGTERM, as systemd would."""

    wants: ClassVar[Wants] = Wants.EVERY

    def __init__(self, interval: float) -> None:
        self.interval = interval  # taken from the configuration, as a real consumer takes its section
        self.events: list[str | int] = []

    def __str__(self) -> str:
        return "probe"

    async def __aenter__(self) -> Self:
        self.events.append("entered")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.events.append("left")

    async def update(self, snapshot: Snapshot) -> None:
        self.events.append(snapshot.seq)
        if len(self.events) == 1 + POLLS:
            signal.raise_signal(signal.SIGTERM)  # the daemon's handler is in place while it polls


class Registry:
    """The probes the registered builders made, and the builders asked (an off one answers None)."""

    def __init__(self) -> None:
        self.probes: list[Probe] = []
        self.asked: list[str] = []

    def probe(self, w: Wiring) -> Probe:
        self.asked.append("probe")
        self.probes.append(Probe(w.config.monitor.poll_interval))
        return self.probes[-1]

    def off(self, w: Wiring) -> None:
        self.asked.append("off")  # and builds nothing: its section is off


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """Two consumers registered after the daemon's own: the probe, and one whose section is off."""
    found = Registry()
    monkeypatch.setattr(consumers, "CONSUMERS", [*consumers.CONSUMERS, Consumer(found.probe), Consumer(found.off)])
    return found


async def run(tmp_path: Path, *, single: bool) -> int:
    config = with_overrides(load(daemon_config(tmp_path, "", poll_interval=0.2)))
    assert config.nut.port_file is not None
    portfile = PortFile(config.nut.port_file)
    portfile.locate()
    async with asyncio.timeout(GUARD):  # a bound against a hang
        return await daemon.run(config, portfile, single=single, verbose=False, demo=False)


async def test_a_registered_consumer_is_built_entered_fed_every_poll_and_left_by_the_daemon(
    tmp_path: Path, registry: Registry
) -> None:
    assert await run(tmp_path, single=False) == daemon.EX_OK
    assert registry.asked == ["probe", "off"]
    [probe] = registry.probes
    assert probe.interval == 0.2
    events = probe.events
    assert events[0] == "entered" and events[-1] == "left"  # left only after the last poll it was given
    polls = events[1:-1]
    assert polls[:POLLS] == list(range(1, POLLS + 1))  # every poll, in order, from the first
    assert polls == list(range(1, len(polls) + 1))  # and what came before the stop, none skipped
    assert "ups.status" in (tmp_path / "solar.dev").read_text()  # the daemon's own consumers ran beside it


async def test_the_one_shot_poll_starts_only_the_consumers_that_take_it(tmp_path: Path, registry: Registry) -> None:
    assert await run(tmp_path, single=True) == daemon.EX_OK
    assert registry.asked == []  # neither registered entry takes -s's poll
    assert "ups.status" in (tmp_path / "solar.dev").read_text()  # the port file does
