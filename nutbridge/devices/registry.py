"""The device families, one record each (devices/base.py's Family): what ``[source] kind`` may name, the section
each reads, how each opens, its NUT table and its reading type. Adding a family is adding its folder and one line
here; the config (``[source] kind``, what a section lacks, the command line's ``--source`` and ``--simulate``) and
the daemon (``open``) take them from here. A test may ``register`` one of its own."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from nutbridge.devices.base import Family, SourceConfig

# Each family's record by ``[source] kind``, in the order an error message lists them: the module that holds it,
# imported when that kind is used, so a daemon loads its own family's code (its section, a NUT table, a model) and
# no other's.
MODULES: dict[str, str] = {
    "tracer": "nutbridge.devices.tracer.family",
    "simulator": "nutbridge.simulator.family",
    "envoy": "nutbridge.devices.enphase.family",
    "powerwall": "nutbridge.devices.powerwall.family",
}
DEFAULT_KIND = "tracer"  # a [source] without ``kind``
_registered: dict[str, Family[Any]] = {}  # a test's own families


def kinds() -> list[str]:
    """Every ``[source] kind`` there is."""
    return [*MODULES, *_registered]


def family(kind: str) -> Family[Any]:
    """The family of ``kind`` (KeyError for none), its module imported on first use."""
    if kind in _registered:
        return _registered[kind]
    record: Family[Any] = importlib.import_module(MODULES[kind]).FAMILY
    if record.kind != kind:
        raise AssertionError(f"{MODULES[kind]} holds the family {record.kind!r}, not {kind!r}")
    return record


def families() -> dict[str, Family[Any]]:
    """Every family by kind (each module imported: for what lists them all, as the API's document)."""
    return {kind: family(kind) for kind in kinds()}


def register(record: Family[Any]) -> Callable[[], None]:
    """Add ``record`` (a test's own); returns the function that removes it again."""
    if record.kind in kinds():
        raise ValueError(f"a device family named {record.kind!r} is registered already")
    _registered[record.kind] = record

    def remove() -> None:
        _registered.pop(record.kind, None)

    return remove


def from_command_line(section: SourceConfig | None, *, url: str | None, simulate: bool) -> SourceConfig | None:
    """``[source]`` as the command line changes it: ``--source URL`` is a Tracer at that Modbus URL, ``--simulate``
    the simulator (with the section's timeout); the caller refuses both at once."""
    if url is not None:
        from nutbridge.devices.modbus import parse_modbus_url  # here: only where the Tracer is read
        from nutbridge.devices.tracer.config import TracerConfig

        return TracerConfig(url=parse_modbus_url(url, "--source"))
    if not simulate:
        return section
    from nutbridge.simulator.config import SimulatorConfig  # here and in chosen: only where the simulator runs

    if isinstance(section, SimulatorConfig):
        return section
    return SimulatorConfig(timeout=(section or SimulatorConfig()).timeout)


def chosen(section: SourceConfig | None, *, test: bool) -> tuple[Family[Any], SourceConfig]:
    """The family that opens ``section``, and the section it opens: in TEST mode a family without fixtures of its
    own shows the simulator (with its default settings), and so does a configuration without a source."""
    record = None if section is None else family(section.kind)
    if record is None or section is None or (test and not record.test_mode):
        from nutbridge.simulator.config import SimulatorConfig

        return family(SimulatorConfig.kind), SimulatorConfig()
    return record, section
