"""SIGTERM and SIGINT before the event loop takes the signals over: the handler the process starts with.

It raises EarlyStop, so a stop in the first milliseconds unwinds quietly (``__main__`` exits 0), and it also
records the stop: Python drops an exception raised by a signal handler while the import machinery is inside its
own cleanup (a module lock's release), and then the process would go on as if no signal had come. The daemon asks
``requested()`` once the event loop holds the signals, and stops at once if one came. Nothing else is imported
here, so it goes in before anything heavy.
"""

from __future__ import annotations

import signal
from types import FrameType

_stops: list[int] = []  # the signals that came, in order


class EarlyStop(BaseException):
    """SIGTERM or SIGINT arrived before the event loop took over the signals."""


def _stop(signum: int, frame: FrameType | None) -> None:
    _stops.append(signum)
    raise EarlyStop


def install() -> None:
    """Catch SIGTERM and SIGINT from now until the event loop takes them (``loop.add_signal_handler``)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)


def requested() -> bool:
    """True when a stop came before the event loop held the signals, even one whose EarlyStop Python dropped."""
    return bool(_stops)
