"""Put on PYTHONPATH by tests/test_driver_cmd.py for the driver processes NUT starts: when
``nutbridge.nut.driver_socket`` cannot be found (the branch that adds it has not landed), it is taken from
tests/helpers/driver_socket_standin.py. The finder goes last, so the real module always wins."""

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

STANDIN = Path(__file__).parent.parent / "driver_socket_standin.py"


class StandIn(importlib.abc.MetaPathFinder):
    """Finds only the driver socket's module, and only when nothing before it did."""

    def find_spec(self, name: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name != "nutbridge.nut.driver_socket":
            return None
        return importlib.util.spec_from_file_location(name, STANDIN)


sys.meta_path.append(StandIn())
