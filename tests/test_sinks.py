"""The sink boundary's queue, as each sink declares it: a sink that wants every poll gets every snapshot in order
while it is busy; one that wants only the newest never starts on a snapshot a newer one has replaced."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest

from nutbridge.datalog.writer import DataLog
from nutbridge.feeds.linesocket import LineSocket
from nutbridge.feeds.mqtt import MqttFeed
from nutbridge.nut.driver import PortFileSink
from nutbridge.printer import PollPrinter
from nutbridge.sdnotify import Systemd
from nutbridge.server.live import LiveSnapshot
from nutbridge.server.pubsub import PubSubHub
from nutbridge.sinks import EVERY_POLL_QUEUE, Sink, SinkRunner, Wants
from nutbridge.snapshot import Comms, Snapshot
from tests.helpers import GUARD


def snapshot(seq: int) -> Snapshot:
    return Snapshot(seq=seq, time=float(seq), comms=Comms.OK, variables={})


class Held:
    """A sink that holds its first update until the test releases it; the seqs it started on, in order."""

    wants: ClassVar[Wants]

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.busy = asyncio.Event()  # set once it has started on a snapshot
        self.release = asyncio.Event()

    def __str__(self) -> str:
        return "held sink"

    async def update(self, snapshot: Snapshot) -> None:
        self.seen.append(snapshot.seq)
        self.busy.set()
        await self.release.wait()


class EveryPoll(Held):
    wants = Wants.EVERY


class NewestOnly(Held):
    wants = Wants.NEWEST


async def fed_while_busy(sink: Held, count: int) -> SinkRunner:
    """Snapshot 1, then 2..``count`` while the sink is still on 1; then the sink is released and the runner
    closed, and it has handled what it kept."""
    runner = SinkRunner(sink)
    async with asyncio.timeout(GUARD), asyncio.TaskGroup() as tg:
        tg.create_task(runner.run())
        runner.offer(snapshot(1))
        await sink.busy.wait()
        for seq in range(2, count + 1):
            runner.offer(snapshot(seq))
        sink.release.set()
        runner.close()
    return runner


async def test_a_sink_that_wants_every_poll_gets_each_in_order_while_it_is_busy() -> None:
    sink = EveryPoll()
    runner = await fed_while_busy(sink, 10)
    assert sink.seen == list(range(1, 11)) and runner.dropped == 0


async def test_a_sink_that_wants_every_poll_keeps_the_newest_when_it_falls_a_whole_queue_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = EveryPoll()
    runner = await fed_while_busy(sink, 1 + EVERY_POLL_QUEUE + 5)
    assert sink.seen == [1, *range(7, EVERY_POLL_QUEUE + 7)]  # the oldest five dropped, the rest in order
    assert runner.dropped == 5 and "held sink is falling behind" in caplog.text


async def test_a_sink_that_wants_the_newest_never_starts_on_a_stale_one() -> None:
    sink = NewestOnly()
    runner = await fed_while_busy(sink, 10)
    assert sink.seen == [1, 10] and runner.dropped == 8


@pytest.mark.parametrize(
    ("sink", "wants"),
    [
        (DataLog, Wants.EVERY),  # a row per poll
        (PubSubHub, Wants.EVERY),  # subscribers get every poll
        (PollPrinter, Wants.EVERY),  # a line per poll
        (PortFileSink, Wants.NEWEST),
        (LiveSnapshot, Wants.NEWEST),
        (LineSocket, Wants.NEWEST),
        (MqttFeed, Wants.NEWEST),
        (Systemd, Wants.NEWEST),
    ],
)
def test_each_of_the_daemons_sinks_wants_what_its_consumers_need(sink: type[Sink], wants: Wants) -> None:
    assert sink.wants is wants
