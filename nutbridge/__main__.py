"""``python -m nutbridge`` and the ``nutbridge`` command.

Signal handlers (early_stop.py) go in before anything heavy is imported, so a SIGTERM or SIGINT in the first
milliseconds ends the process quietly (status 0) instead of with a traceback. The handler raises its own exception, not
KeyboardInterrupt: CPython exits by re-raising SIGINT on itself after any KeyboardInterrupt it saw escape
a frame, even one we catch, which would turn a clean stop into "killed by SIGINT".
"""

import sys
import warnings

from nutbridge import early_stop
from nutbridge.early_stop import EarlyStop


def main() -> int:
    """Run the command line; a stop before the event loop takes over the signals exits 0, quietly."""
    try:
        early_stop.install()  # inside the try: a SIGTERM that lands while SIGINT's handler goes in raises EarlyStop
        from nutbridge.cli import main as cli_main

        return cli_main()
    except (EarlyStop, KeyboardInterrupt):
        # A stop while asyncio builds its event loop leaves half a loop (and a coroutine never awaited) to the
        # garbage collector, which would print about both at exit: nothing went wrong, so nothing is said.
        sys.unraisablehook = lambda _: None
        warnings.simplefilter("ignore")
        return 0


if __name__ == "__main__":
    sys.exit(main())
