"""``-v``: one line per poll on stdout, from the snapshot alone."""

from __future__ import annotations

import sys
import time
from typing import ClassVar

from nutbridge.sinks import Wants
from nutbridge.snapshot import Comms, Snapshot


def poll_line(s: Snapshot) -> str:
    """One line for a person watching the daemon."""
    stamp = time.strftime("%H:%M:%S", time.localtime(s.time))
    r = s.reading
    if r is None:
        state = "nocomms" if s.comms is Comms.LOST else f"failed poll {s.failures} ({s.silent_for:.0f} s)"
        return f"{stamp}  {state}: {s.error}"
    v = s.variables
    return (
        f"{stamp}  {v.get('ups.status') or '':<14} battery {r.battery_charge or 0:3.0f} % "
        f"{r.battery_voltage or 0:5.2f} V {r.battery_current or 0:+6.2f} A   "
        f"PV {r.pv_voltage or 0:5.2f} V {r.pv_power or 0:6.1f} W   load {r.load_power or 0:5.1f} W   "
        f"runtime {v.get('battery.runtime') or '-'} s"
    )


class PollPrinter:
    """Prints each snapshot; a closed stdout (``| head -1``) is the sink's error, never the daemon's."""

    wants: ClassVar[Wants] = Wants.EVERY

    def __str__(self) -> str:
        return "poll printer (stdout)"

    async def update(self, snapshot: Snapshot) -> None:
        """Print the poll."""
        print(poll_line(snapshot), file=sys.stdout, flush=True)
