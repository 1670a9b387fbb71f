"""The sidecar's aiohttp application and its listener, run inside the daemon's TaskGroup.

It answers from the data log (and, with the JSON API to come, the live snapshot), never from the hardware.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Self

from aiohttp import web

from nutbridge.errors import NutbridgeError
from nutbridge.server.daycache import DayCache
from nutbridge.server.legacy import ChargeController

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


def make_app(data_dir: Path) -> web.Application:
    """The application: the Solar Protocol v1 routes over ``data_dir``."""
    app = web.Application(client_max_size=MAX_BODY)
    legacy = ChargeController(DayCache(data_dir))
    app.router.add_route("*", "/api/v1/chargecontroller.php", legacy.handle)
    return app


class Sidecar:
    """Listens on ``host:port`` while entered; ``port`` is the bound one (0 picks a free port)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)

    def __str__(self) -> str:
        return f"API on http://{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise NutbridgeError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc
        self.port = self._runner.addresses[0][1]
        log.info("%s", self)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._runner.cleanup()
