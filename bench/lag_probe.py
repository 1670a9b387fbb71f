"""Run nutbridge with an event-loop lag probe in its loop (for the benches only).

Usage: python -m bench.lag_probe OUT.json NUTBRIDGE-ARGS...  The probe (bench.loop_lag's: a 2 ms sleep, again
and again) runs beside the daemon's own coroutine; when the daemon stops, how late each wake-up came is
written to OUT.json, in seconds.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from bench.loop_lag import probe


def main() -> None:
    out, args = Path(sys.argv[1]), sys.argv[2:]
    lags: list[float] = []
    real_run = asyncio.run

    def run_with_probe(main: Coroutine[Any, Any, Any], **kw: Any) -> Any:
        async def both() -> Any:
            stop = asyncio.Event()
            task = asyncio.create_task(probe(lags, stop))
            try:
                return await main
            finally:
                stop.set()
                await task

        return real_run(both(), **kw)

    asyncio.run = run_with_probe
    sys.argv = ["nutbridge", *args]
    from nutbridge.__main__ import main as nutbridge

    try:
        nutbridge()
    finally:
        out.write_text(json.dumps(lags))


if __name__ == "__main__":
    main()
