"""The coordinator: the only place that knows about time. One poll, one Snapshot, many sinks (HA's
DataUpdateCoordinator).

Each poll retries with jittered exponential backoff (tenacity), but never past the poll's deadline, so a
dead device never delays the schedule. Silence becomes comms loss only after ``grace`` seconds, so a
glitch of a few seconds never reaches upsmon, which on NUT 2.8.1/2.8.2 would shut down at once while on
battery. Comms changes are logged once when they start and once when they end. Intervals use the
monotonic clock; the wall clock is only stamped on snapshots, for people.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

from nutbridge.devices.base import Source
from nutbridge.errors import ProtocolError, Refused, SourceError
from nutbridge.model import Reading
from nutbridge.outlook import Forecaster
from nutbridge.power import DEFAULT_CHARGE_LOW, LowVoltage, PowerRule, PowerState, power_state, with_reserve
from nutbridge.sinks import SinkRunner
from nutbridge.snapshot import Comms, Snapshot, View

if TYPE_CHECKING:
    from tenacity import RetryCallState

log = logging.getLogger(__name__)

# An attempt needs at least this much time left before the deadline to be worth starting.
MIN_ATTEMPT = 0.05
# The pause after a poll's first failed attempt, before the backoff proper.
FIRST_BACKOFF = 0.05
# The share of the interval a poll may use; the rest is slack for the loop.
POLL_SHARE = 0.9
# How long past its deadline (and one source timeout, for the reset after a cancelled attempt) a poll may
# run, or the loop may be late for its next poll, before the loop counts as stalled (the watchdog's bound).
STALL_SLACK = 5.0
NO_VARIABLES: Mapping[str, str | None] = MappingProxyType({})


class Monitor:
    """Polls ``source`` every ``interval`` seconds and offers each Snapshot to every runner.

    Each answered poll gets its power state from ``power`` (the shared rules of power.py unless a family brings
    its own), with ``charge_low`` (battery.charge.low, as the port file sets it by hand), ``low_voltage`` (how
    close to the device's own low-voltage disconnect LB comes; None: not at all) and the previous state for the
    hysteresis, and its ``variables`` from the view it is handed (the daemon's: NUT's). With an ``outlook`` (a
    data log to learn the sunrise from), each answered poll also gets the expected charge at the next sunrise,
    and with a ``reserve`` (%) LB when that charge would be below it (power.with_reserve).
    """

    def __init__(
        self,
        source: Source,
        runners: Sequence[SinkRunner] = (),
        *,
        interval: float,
        interval_on_battery: float | None = None,
        grace: float = 10.0,
        charge_low: Callable[[], float] = lambda: DEFAULT_CHARGE_LOW,
        low_voltage: LowVoltage | None = None,
        variables: View | None = None,
        power: PowerRule = power_state,
        outlook: Forecaster | None = None,
        reserve: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,  # the backoff's; a test's clock has its own
        before_poll: Callable[[], Awaitable[None]] | None = None,  # once per poll, before its first attempt
        retries: bool = True,  # False: one attempt per poll (TEST mode shows a failure at once)
    ) -> None:
        self.source = source
        self.runners = list(runners)
        self.interval = interval
        self.interval_on_battery = interval_on_battery or interval
        self.grace = grace
        self.charge_low = charge_low
        self.low_voltage = low_voltage
        self.variables = variables
        self.power = power
        self.outlook = outlook
        self.reserve = reserve
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.before_poll = before_poll
        self.retries = retries
        self.polls = 0
        self.failures = 0
        self.failures_total = 0
        self.comms = Comms.OK
        self._failing_since: float | None = None
        self._last_good: float | None = None
        self._power: PowerState | None = None
        self._reset_requested = False
        self.last_poll_end: float | None = None  # ``clock`` time the last poll ended, good or failed
        self._poll_start: float | None = None  # while a poll runs
        self._poll_deadline = float("inf")
        self._next_at: float | None = None  # while ``run`` waits for its next poll

    @property
    def active_interval(self) -> float:
        """The interval now: ``interval_on_battery`` while on battery or without contact (enphase-monitor's
        POLLFREQALERT), when NUT most needs fresh news; ``interval`` otherwise."""
        on_battery = self._power is not None and not self._power.on_line
        return self.interval_on_battery if on_battery or self.comms is not Comms.OK else self.interval

    def request_reset(self) -> None:
        """Reconnect before the next poll, so device info is read again (SIGHUP)."""
        self._reset_requested = True

    async def read(self, deadline: float) -> Reading:
        """Read the source, retrying with backoff until ``deadline`` (a ``clock`` time).

        The first attempt runs without tenacity: most polls succeed at once, and building the retry
        machinery costs more CPU than the poll's own decoding.
        """
        try:
            return await self._attempt(deadline)
        except Refused:
            raise  # a definite answer (a 404): asking again within the poll would only repeat it
        except SourceError:
            if not self.retries or self.clock() + FIRST_BACKOFF + MIN_ATTEMPT >= deadline:
                raise
        await self.sleep(FIRST_BACKOFF)  # tenacity's first attempt follows at once; back off before it

        # Imported on the first failure only: `nutbridge -s` at boot should not pay for it.
        from tenacity import (
            AsyncRetrying,
            retry_if_exception_type,
            retry_if_not_exception_type,
            wait_exponential_jitter,
        )

        def out_of_time(state: RetryCallState) -> bool:
            return self.clock() + state.upcoming_sleep + MIN_ATTEMPT >= deadline

        retrying = AsyncRetrying(
            stop=out_of_time,
            wait=wait_exponential_jitter(multiplier=FIRST_BACKOFF, max=max(0.1, self.active_interval / 4), jitter=0.05),
            retry=retry_if_exception_type(SourceError) & retry_if_not_exception_type(Refused),
            reraise=True,
            sleep=self.sleep,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(deadline)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _attempt(self, deadline: float) -> Reading:
        try:
            async with asyncio.timeout(max(MIN_ATTEMPT, deadline - self.clock())):
                return await self.source.read()
        except TimeoutError:
            await self.source.reset()  # the cancelled request may still answer: start clean
            raise SourceError(f"{self.source}: no complete answer within the poll interval") from None

    def deadline(self, start: float) -> float:
        """When this poll must give up: within its share of the interval, and, while failing, at the end
        of the grace, so comms loss is declared on time. One attempt is always allowed."""
        end = start + self.active_interval * POLL_SHARE
        if self._failing_since is not None and self.comms is not Comms.LOST:
            end = min(end, max(self._failing_since + self.grace, start + self.source.timeout + MIN_ATTEMPT))
        return end

    async def poll(self, deadline: float | None = None) -> Snapshot:
        """One poll, with retries inside the interval; updates and logs the comms state."""
        self.polls += 1
        start = self._poll_start = self.clock()
        self._poll_deadline = min(deadline or float("inf"), self.deadline(start))
        try:
            if self._reset_requested:
                self._reset_requested = False
                await self.source.reset()
            try:
                if self.before_poll is not None:
                    await self.before_poll()
                reading = await self.read(self._poll_deadline)
            except SourceError as exc:
                return self._failed(exc, start)
            return self._answered(reading)
        finally:
            self._poll_start, self.last_poll_end = None, self.clock()

    def stalled(self, excused: float = 0.0) -> str | None:
        """Why the poll loop is not making progress, or None while it is (what the systemd watchdog asks).

        A poll progresses until its deadline plus one source timeout and ``STALL_SLACK``, however long its
        interval: past that, it ignored its cancellation (a hung source). Between polls the loop progresses
        until ``STALL_SLACK`` after the next poll is due. ``excused`` seconds are forgiven: the time the
        event loop itself was blocked, when no poll could run.
        """
        now = self.clock() - excused
        if self._poll_start is not None:
            bound = self._poll_deadline + self.source.timeout + STALL_SLACK
            if now > bound:
                running, allowed = self.clock() - self._poll_start, bound - self._poll_start
                return f"poll {self.polls} has run for {running:.0f} s, past its bound of {allowed:.0f} s"
        elif self._next_at is not None and now > self._next_at + STALL_SLACK:
            return f"the next poll is {self.clock() - self._next_at:.0f} s overdue"
        return None

    def _answered(self, reading: Reading) -> Snapshot:
        info = self.source.info
        if info is None:  # a source sets info when it connects; a reading without it is a source bug
            raise AssertionError(f"{self.source} returned a reading without device info")
        if self._failing_since is not None:
            log.warning(
                "contact with %s restored after %d failed poll(s) over %.1f s",
                self.source,
                self.failures,
                self.clock() - self._failing_since,
            )
        self.failures, self._failing_since, self.comms = 0, None, Comms.OK
        outlook = None if self.outlook is None else self.outlook.update(reading, info)
        power = self.power(
            reading, charge_low=self.charge_low(), previous=self._power, info=info, low_voltage=self.low_voltage
        )
        if self.reserve is not None:
            power = with_reserve(power, self._power, None if outlook is None else outlook.charge, self.reserve)
        self._power = power
        variables = (
            NO_VARIABLES
            if self.variables is None
            else MappingProxyType(dict(self.variables(reading, info, power, outlook)))
        )
        self._last_good = self.wall_clock()
        return Snapshot(
            seq=self.polls,
            time=self._last_good,
            comms=Comms.OK,
            reading=reading,
            info=info,
            power=power,
            outlook=outlook,
            variables=variables,
            last_good=self._last_good,
            failures_total=self.failures_total,
        )

    def _failed(self, error: SourceError, start: float) -> Snapshot:
        self.failures += 1
        self.failures_total += 1
        if self._failing_since is None:
            self._failing_since = start
        silent = self.clock() - self._failing_since
        if silent >= self.grace:
            if self.comms is not Comms.LOST:
                # a 404 or garbage is an answer, only not a usable one: say which, as the fix differs
                how = "without a usable answer" if isinstance(error, ProtocolError) else "without an answer"
                log.error("lost contact after %.1f s %s: %s", silent, how, error)
            else:
                log.debug("still no contact: %s", error)
            self.comms = Comms.LOST
        else:
            if self.failures == 1:
                log.warning("poll failed; NUT keeps the last values for up to %g s: %s", self.grace, error)
            self.comms = Comms.FAILING
        return Snapshot(
            seq=self.polls,
            time=self.wall_clock(),
            comms=self.comms,
            variables=MappingProxyType({}),
            error=error,
            failures=self.failures,
            failures_total=self.failures_total,
            silent_for=silent,
            last_good=self._last_good,
        )

    def publish(self, snapshot: Snapshot) -> None:
        """Offer ``snapshot`` to every sink; never waits for one."""
        for runner in self.runners:
            runner.offer(snapshot)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll on a fixed schedule until ``stop`` is set; a slow cycle skips the slots it missed.

        ``stop`` is checked after every poll, so a cancellation swallowed inside a library (Python 3.11's
        ``asyncio.wait_for`` drops one that lands with a reply) cannot keep the daemon polling.
        """
        next_at = self.clock()
        while not stop.is_set():
            self.publish(await self.poll(next_at + self.active_interval * POLL_SHARE))
            next_at = self._next_at = max(next_at + self.active_interval, self.clock())
            try:
                async with asyncio.timeout(max(0.0, next_at - self.clock())):
                    await stop.wait()
            except TimeoutError:
                pass
            finally:
                self._next_at = None
