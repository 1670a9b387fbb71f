"""What the fault tests share: the sockets their faults strand are collected here, not in a later test.

A fault cut at the poll's deadline (a TLS handshake to a gateway that stalls, a connect to a port that never
answers) cancels the library's connection mid-way; asyncio then closes the socket in a callback, which a test's
event loop may close before it runs. The socket itself is gone with the test, but its ResourceWarning would be
raised whenever the garbage collector reaches it, in whichever test runs then: a failure of the wrong test. So
each fault test ends with a collection, and an unclosed socket or transport found then is expected: it is
dropped; any other unraisable exception goes on to pytest as before.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from typing import Any

import pytest

STRANDED = ("unclosed <socket.socket", "unclosed transport", "unclosed <ssl.SSLSocket")


@pytest.fixture(autouse=True)
def collect_stranded_sockets() -> Iterator[None]:
    yield
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, ResourceWarning) and str(unraisable.exc_value).startswith(STRANDED):
            return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        gc.collect()
    finally:
        sys.unraisablehook = previous
