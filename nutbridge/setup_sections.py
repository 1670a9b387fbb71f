"""An existing ``[UPS]`` section of ups.conf beside the one ``nutbridge setup`` would write: what differs, in words.
setup changes no section it did not write, so any difference stops it (setup_steps.py says so). No I/O."""

from __future__ import annotations

import os
from pathlib import Path

from nutbridge.devices.modbus import parse_modbus_url
from nutbridge.errors import ConfigError
from nutbridge.nut.upsconf import port_path
from nutbridge.redact import redact_url


def port_file_differences(entries: dict[str, str], port_file: Path, confpath: Path) -> list[str]:
    """Port-file mode: dummy-ups, reading ``port_file`` once per change (mode = dummy-once)."""
    differs = []
    if entries.get("driver") != "dummy-ups":
        differs.append(f"driver = {entries.get('driver', '(none)')} (setup wants dummy-ups)")
    port = entries.get("port")
    if port is None or port_path(port, confpath) != os.path.realpath(port_file):
        differs.append(f"port = {port or '(none)'} (setup wants {port_file})")
    if entries.get("mode") != "dummy-once":
        differs.append(f"mode = {entries.get('mode', '(none)')} (setup wants dummy-once)")
    return differs


def driver_differences(entries: dict[str, str], url: str, config_file: Path) -> list[str]:
    """Driver mode: nutbridge-driver on the same source (compared as Modbus targets) and, if named, config file."""
    differs = []
    if entries.get("driver") != "nutbridge":
        differs.append(f"driver = {entries.get('driver', '(none)')} (setup wants nutbridge)")
    port = entries.get("port")
    try:
        same = port is not None and parse_modbus_url(port, "port") == parse_modbus_url(url, "--source")
    except ConfigError:
        same = False
    if not same:
        differs.append(f"port = {redact_url(port) if port else '(none)'} (setup wants {redact_url(url)})")
    config = entries.get("config")
    if config is not None and os.path.realpath(config) != os.path.realpath(config_file):
        differs.append(f"config = {config} (setup wants {config_file})")
    return differs
