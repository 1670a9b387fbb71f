"""The port-file sink: what NUT's dummy-ups sees of each poll."""

from __future__ import annotations

import asyncio
import logging
import shlex
import time

from nutbridge.errors import PortFileError
from nutbridge.monitor import Poll
from nutbridge.nut.portfile import PortFile, Write, parse_values
from nutbridge.nut.variables import nut_values

log = logging.getLogger(__name__)

RESTART_TIMEOUT = 30.0


class PortFileSink:
    """Writes each reading into the port file; hides it on comms loss and brings it back after.

    A write the port file defers (no free whole second for its mtime yet) is retried at the next
    second, so dummy-once never misses a change.
    """

    def __init__(self, portfile: PortFile, *, restart_command: str | None = None) -> None:
        self.portfile = portfile
        self.restart_command = restart_command
        self.last_values: dict[str, str | None] = {}
        self.last_write: Write | None = None
        self._pending: asyncio.TimerHandle | None = None
        self._landed = asyncio.Event()  # set while no deferred write is waiting
        self._landed.set()
        self._restart: asyncio.Task[None] | None = None

    def __str__(self) -> str:
        return f"port file {self.portfile}"

    async def update(self, poll: Poll) -> None:
        """Write the reading, or hide the file when comms are lost."""
        if not poll.comms_ok:
            self._cancel_pending()
            if self.portfile.hide():
                log.error("port file renamed to %s: upsd will report the driver lost", self.portfile.hidden_path)
            return
        if poll.reading is None or poll.info is None:
            return  # a failed poll before nocomms: leave the last good values in place
        text = self.portfile.read()
        self.last_values = nut_values(poll.reading, poll.info, parse_values(text))
        self._write(text)
        if self.portfile.restore():
            log.warning("port file %s restored", self.portfile.path)
            self._start_restart()

    def _write(self, text: str | None = None) -> None:
        self._cancel_pending()
        self.last_write = self.portfile.update(self.last_values, text)
        if self.last_write is Write.DEFERRED:
            self._landed.clear()
            loop = asyncio.get_running_loop()
            self._pending = loop.call_at(loop.time() + 1.001 - time.time() % 1, self._write_pending)

    def _write_pending(self) -> None:
        self._pending = None
        try:
            self._write()
        except PortFileError as exc:
            log.error("%s", exc)

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._landed.set()

    async def drain(self) -> None:
        """Wait for a deferred write to land and a driver restart to finish (for one-shot runs)."""
        await self._landed.wait()
        if self._restart is not None:
            await self._restart

    def _start_restart(self) -> None:
        """Run the restart command beside the poll loop, so a slow ``upsdrvctl`` never holds up polling."""
        if not self.restart_command:
            return
        if self._restart is not None and not self._restart.done():
            log.warning("driver_restart_command still running from the last recovery; not started again")
            return
        self._restart = asyncio.create_task(self._restart_driver(), name="nutbridge.driver-restart")

    async def _restart_driver(self) -> None:
        """dummy-ups exited when its file vanished; run the configured command to start it again."""
        assert self.restart_command is not None
        try:
            proc = await asyncio.create_subprocess_exec(
                *shlex.split(self.restart_command),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            log.error("driver_restart_command %r failed to start: %s", self.restart_command, exc.strerror)
            return
        try:
            async with asyncio.timeout(RESTART_TIMEOUT):
                _, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            log.error("driver_restart_command %r killed after %.0f s", self.restart_command, RESTART_TIMEOUT)
            return
        if proc.returncode:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
            log.error("driver_restart_command %r exited %d: %s", self.restart_command, proc.returncode, tail[0])
        else:
            log.info("driver_restart_command %r done", self.restart_command)
