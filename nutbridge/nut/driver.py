"""The port-file sink: what NUT's dummy-ups sees of each Snapshot, in the dialect of the NUT that reads it.

All file work (read, fsync, rename) runs in a worker thread, so an SD card that takes hundreds of
milliseconds to flush never stalls the event loop the sidecar shares. The driver restart after a comms loss
runs in the sink's own TaskGroup (``tasks.Background``, held while the sink is entered), so its failure is
never lost and leaving the sink cancels one still running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import ClassVar, Self, TypeVar

from nutbridge.nut.portfile import PortFile, Write
from nutbridge.nut.portfile_text import ALARM, hand_set
from nutbridge.nut.version import Dialect
from nutbridge.sinks import Wants
from nutbridge.snapshot import Comms, Snapshot
from nutbridge.tasks import Background

log = logging.getLogger(__name__)

RESTART_TIMEOUT = 30.0
RESTORED = "restored"  # written, and renamed back from -nocomms
T = TypeVar("T")


def file_values(snapshot: Snapshot, dialect: Dialect) -> dict[str, str | None]:
    """The snapshot's variables as ``dialect``'s NUT reads them from a port file.

    A fault shows in ups.alarm on every version and clears when it ends: ``ups.alarm:`` up to 2.8.3,
    the ``ALARM`` instruction from 2.8.4; the ALARM status token only where it clears again (≤ 2.8.2).
    """
    values = dict(snapshot.variables)
    status = values.get("ups.status") or ""
    if not dialect.alarm_token:
        values["ups.status"] = " ".join(w for w in status.split() if w != "ALARM")
    alarm = values.get("ups.alarm")
    if not dialect.alarm_line:
        values["ups.alarm"] = None  # 2.8.4+ drops these lines; an old one is cleared, none is added
    if dialect.alarm_instruction:
        values[ALARM] = alarm
    return values


class PortFileSink:
    """Writes each good snapshot into the port file; hides it on comms loss and brings it back after.

    Settings (``settings``: battery.capacity, ups.model …) the file sets by hand stay as written; those
    nutbridge writes carry a marker, so a value read later from the device replaces them. A write with
    no free whole second for its mtime waits for the next second, so dummy-once never misses a change.
    Enter it (``async with``) before its first update when it has a ``restart_command``: the restart runs in
    its TaskGroup.
    """

    wants: ClassVar[Wants] = Wants.NEWEST  # at sub-second polling, a write skipped is no loss

    def __init__(
        self,
        portfile: PortFile,
        *,
        dialect: Dialect,
        settings: Iterable[str] = (),
        restart_command: tuple[str, ...] = (),
    ) -> None:
        self.portfile = portfile
        self.dialect = dialect
        self.settings = frozenset(settings)
        self.restart_command = restart_command
        self._restart: asyncio.Task[None] | None = None
        self._background: Background | None = None

    def __str__(self) -> str:
        return f"port file {self.portfile}"

    async def __aenter__(self) -> Self:
        self._background = await Background().__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Cancel a driver restart still running (``drain`` first waits for it: ``-s`` does)."""
        background, self._background = self._background, None
        if background is not None:
            await background.__aexit__(kind, exc, tb)

    async def update(self, snapshot: Snapshot) -> None:
        """Write the snapshot, hide the file when comms are lost, or leave it while comms are failing."""
        if snapshot.comms is Comms.LOST:
            if await asyncio.to_thread(self._locked, self.portfile.hide):
                log.error("port file renamed to %s: upsd will report the driver lost", self.portfile.hidden_path)
            return
        if snapshot.comms is Comms.FAILING:
            return  # within the grace: NUT keeps the last good values
        values = file_values(snapshot, self.dialect)
        while (outcome := await asyncio.to_thread(self._apply, values)) is Write.DEFERRED:  # noqa: ASYNC110
            await asyncio.sleep(1.001 - time.time() % 1)  # waiting for the clock's next second, not for an event
        if outcome is RESTORED:
            log.warning("port file %s restored", self.portfile.path)
            self._start_restart()

    def _locked(self, work: Callable[[], T]) -> T:
        with self.portfile.lock:  # a timed-out update's thread may still be running
            return work()

    def _apply(self, values: dict[str, str | None]) -> Write | str:
        """In the worker thread, in one hop: merge into the file's current text, leaving hand-set settings
        alone, then rename a hidden file back. Returns the Write, or RESTORED."""
        with self.portfile.lock:
            text = self.portfile.read()
            for name in hand_set(text, self.settings):
                values.pop(name, None)
            outcome = self.portfile.update(values, marked=self.settings, old=text)
            if outcome is not Write.DEFERRED and self.portfile.restore():
                return RESTORED
            return outcome

    async def drain(self) -> None:
        """Wait for a driver restart to finish (for one-shot runs)."""
        if self._restart is not None:
            await self._restart

    def _start_restart(self) -> None:
        """Run the restart command beside the poll loop, so a slow ``upsdrvctl`` never holds up polling."""
        if not self.restart_command:
            return
        if self._restart is not None and not self._restart.done():
            log.warning("driver restart still running from the last recovery; not started again")
            return
        if self._background is None:
            raise RuntimeError(f"{self} has a driver restart command but was not entered (async with)")
        self._restart = self._background.start(self._restart_driver(), name="nutbridge.driver-restart")

    async def _restart_driver(self) -> None:
        """dummy-ups exited when its file vanished; start it again."""
        shown = " ".join(self.restart_command)
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.restart_command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            log.error("driver restart %r failed to start: %s", shown, exc.strerror)
            return
        try:
            async with asyncio.timeout(RESTART_TIMEOUT):
                _, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            log.error("driver restart %r killed after %.0f s", shown, RESTART_TIMEOUT)
            return
        if proc.returncode:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
            log.error("driver restart %r exited %d: %s", shown, proc.returncode, tail[0])
        else:
            log.info("driver restart %r done", shown)
