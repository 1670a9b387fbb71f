"""The device families, one record each (devices/base.py's Family): what ``[source] kind`` may name, the section
each reads, how each opens, its NUT table and its reading type. Adding a family is adding its folder and one line
here; the config (``[source] kind``, what a section lacks, the command line's ``--source`` and ``--simulate``) and
the daemon (``open``) take them from here. A test may ``register`` one of its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nutbridge.devices.base import Family, SourceConfig
from nutbridge.devices.enphase.family import FAMILY as ENVOY
from nutbridge.devices.modbus import parse_modbus_url
from nutbridge.devices.powerwall.family import FAMILY as POWERWALL
from nutbridge.devices.tracer.config import TracerConfig
from nutbridge.devices.tracer.family import FAMILY as TRACER
from nutbridge.simulator.config import SimulatorConfig
from nutbridge.simulator.family import FAMILY as SIMULATOR

# By ``[source] kind``, in the order an error message lists them.
FAMILIES: dict[str, Family[Any]] = {f.kind: f for f in (TRACER, SIMULATOR, ENVOY, POWERWALL)}
DEFAULT_KIND = TRACER.kind  # a [source] without ``kind``


def register(family: Family[Any]) -> Callable[[], None]:
    """Add ``family`` (a test's own); returns the function that removes it again."""
    if family.kind in FAMILIES:
        raise ValueError(f"a device family named {family.kind!r} is registered already")
    FAMILIES[family.kind] = family

    def remove() -> None:
        FAMILIES.pop(family.kind, None)

    return remove


def from_command_line(section: SourceConfig | None, *, url: str | None, simulate: bool) -> SourceConfig | None:
    """``[source]`` as the command line changes it: ``--source URL`` is a Tracer at that Modbus URL, ``--simulate``
    the simulator (with the section's timeout); the caller refuses both at once."""
    if url is not None:
        return TracerConfig(url=parse_modbus_url(url, "--source"))
    if simulate and not isinstance(section, SimulatorConfig):
        return SimulatorConfig(timeout=(section or SimulatorConfig()).timeout)
    return section


def chosen(section: SourceConfig | None, *, test: bool) -> tuple[Family[Any], SourceConfig]:
    """The family that opens ``section``, and the section it opens: in TEST mode a family without fixtures of its
    own shows the simulator (with its default settings), and so does a configuration without a source."""
    family = None if section is None else FAMILIES[section.kind]
    if family is None or section is None or (test and not family.test_mode):
        return SIMULATOR, SimulatorConfig()
    return family, section
