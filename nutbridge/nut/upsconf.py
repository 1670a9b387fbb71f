"""Find the NUT UPS entry that reads our port file, and how to bring its driver back after comms loss.

dummy-ups exits when its file is renamed to ``-nocomms``. Under systemd, Debian's nut-driver@UPS restarts
it (every 15 s, or 2 s with our drop-in); without systemd nothing does, so nutbridge runs
``upsdrvctl start UPS`` itself, the UPS found in ups.conf by the port file's path.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

log = logging.getLogger(__name__)

SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*(?:#.*)?$")
# key = value; a value in double quotes may hold \" and \\, an unquoted one ends at a # (a comment)
ENTRY = re.compile(r"""^\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([^#]*?))\s*(?:#.*)?$""")
UPSDRVCTL_FOLDERS = ("/sbin", "/usr/sbin", "/lib/nut", "/usr/lib/nut", "/usr/libexec/nut", "/usr/local/ups/sbin")
# upsdrvctl's compiled-in driver folder by build: Debian up to 2.8.4 (/lib/nut), others, Debian from 2.8.5
DRIVER_PATHS = ("/lib/nut", "/usr/lib/nut", "/usr/libexec/nut")
SYSTEMD_UNIT_FOLDERS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
MAX_UPS_CONF = 1024 * 1024


def nut_confpath() -> Path:
    """NUT's configuration folder: $NUT_CONFPATH, else /etc/nut."""
    return Path(os.environ.get("NUT_CONFPATH") or "/etc/nut")


def find_ups(port_file: Path, confpath: Path | None = None) -> str | None:
    """The ups.conf section whose ``port`` is ``port_file`` (relative ports are taken from NUT's folder)."""
    folder = confpath or nut_confpath()
    try:
        text = (folder / "ups.conf").read_text(errors="replace")[:MAX_UPS_CONF]
    except OSError:
        return None
    wanted = os.path.realpath(port_file)
    for section, entries in parse_sections(text).items():
        port = entries.get("port")
        if port is not None and port_path(port, folder) == wanted:
            return section
    return None


def nut_statepath() -> Path:
    """Where ``nutbridge setup`` puts the port file: $NUT_STATEPATH, else /var/lib/nut.

    Not NUT's own default state folder, which is /run/nut on Debian: a tmpfs, where a port file and the lines
    written into it by hand would not survive a reboot.
    """
    return Path(os.environ.get("NUT_STATEPATH") or "/var/lib/nut")


def nut_runpath() -> Path:
    """Where ``nutbridge setup`` puts the port file when it is seeded: $NUTBRIDGE_RUNPATH, else /run/nut,
    NUT's own runtime folder on Debian (a tmpfs: a write at every poll costs the SD card nothing)."""
    return Path(os.environ.get("NUTBRIDGE_RUNPATH") or "/run/nut")


def parse_sections(text: str) -> dict[str, dict[str, str]]:
    """ups.conf's sections: ``[name]`` → its ``key = value`` entries (global settings before the first
    section are left out; of a key given twice, the last counts)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if match := SECTION.match(line):
            current = sections.setdefault(match[1].strip(), {})
        elif current is not None and (match := ENTRY.match(line)):
            quoted, single, bare = match[2], match[3], match[4]
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else single if single is not None else bare
            current[match[1]] = value
    return sections


def parse_globals(text: str) -> dict[str, str]:
    """ups.conf's global settings: the ``key = value`` entries before the first section (user, driverpath …)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if SECTION.match(line):
            break
        if match := ENTRY.match(line):
            quoted, single, bare = match[2], match[3], match[4]
            found[match[1]] = (
                re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else single if single is not None else bare
            )
    return found


def driver_folder(confpath: Path | None = None) -> Path | None:
    """NUT's driver folder, where upsdrvctl looks for ``driver = NAME``: ups.conf's ``driverpath`` (relative to
    NUT's folder), else the first of DRIVER_PATHS that exists; None when neither."""
    folder = confpath or nut_confpath()
    try:
        text = (folder / "ups.conf").read_text(errors="replace")[:MAX_UPS_CONF]
    except OSError:
        text = ""
    configured = parse_globals(text).get("driverpath")
    if configured:
        return folder / configured
    return next((Path(p) for p in DRIVER_PATHS if Path(p).is_dir()), None)


def port_path(port: str, confpath: Path) -> str:
    """The file a dummy-ups ``port`` names, resolved: a relative one is in NUT's configuration folder
    (dummy-ups(8): "the NUT sysconfig directory is prepended")."""
    return os.path.realpath(confpath / port)


def systemd_runs(ups: str) -> bool:
    """True when systemd is PID 1 and has Debian's nut-driver@ unit, so it restarts the driver itself."""
    if not Path("/run/systemd/system").is_dir():
        return False
    names = (f"nut-driver@{ups}.service", "nut-driver@.service")
    return any((Path(folder) / name).exists() for folder in SYSTEMD_UNIT_FOLDERS for name in names)


def find_upsdrvctl() -> str | None:
    """upsdrvctl from $PATH first, then where distributions put it."""
    import shutil  # here: only the port file's driver restart looks for it, never nutbridge-driver

    found = shutil.which("upsdrvctl")
    if found:
        return found
    for folder in UPSDRVCTL_FOLDERS:
        candidate = Path(folder) / "upsdrvctl"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def restart_command(port_file: Path, configured: tuple[str, ...] | None) -> tuple[str, ...]:
    """The command that starts the driver again after a comms loss; () for none.

    ``configured`` wins (``()`` turns it off); otherwise ``upsdrvctl start UPS`` when the UPS is found
    and systemd does not manage the driver.
    """
    if configured is not None:
        return configured
    ups = find_ups(port_file)
    if ups is None:
        log.info("no UPS in %s reads %s; no driver restart after a comms loss", nut_confpath(), port_file)
        return ()
    if systemd_runs(ups):
        log.info("systemd's nut-driver@%s restarts the driver after a comms loss", ups)
        return ()
    upsdrvctl = find_upsdrvctl()
    if upsdrvctl is None:
        log.warning("upsdrvctl not found; set nut.driver_restart_command to restart %s after a comms loss", ups)
        return ()
    return (upsdrvctl, "start", ups)
