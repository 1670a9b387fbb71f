"""``python -m nutbridge`` and the ``nutbridge`` command.

Signal handlers go in before anything heavy is imported, so a SIGTERM or SIGINT in the first
milliseconds ends the process quietly (status 0) instead of with a traceback.
"""

import signal
import sys
from types import FrameType


def _stop_early(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    """Run the command line; a stop before the event loop takes over the signals exits 0, quietly."""
    signal.signal(signal.SIGTERM, _stop_early)
    try:
        from nutbridge.cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
