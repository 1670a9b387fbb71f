"""`python -m nutbridge` runs the same command line as the `nutbridge` script."""

import sys

from nutbridge.cli import main

sys.exit(main())
