"""Find the NUT UPS entry that reads our port file, and how to bring its driver back after comms loss.

dummy-ups exits when its file is renamed to ``-nocomms``. Under systemd, Debian's nut-driver@UPS restarts
it (every 15 s, or 2 s with our drop-in); without systemd nothing does, so nutbridge runs
``upsdrvctl start UPS`` itself, the UPS found in ups.conf by the port file's path.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
PORT = re.compile(r"""^\s*port\s*=\s*(?:"([^"]*)"|'([^']*)'|(\S+))\s*$""")
UPSDRVCTL_FOLDERS = ("/sbin", "/usr/sbin", "/lib/nut", "/usr/lib/nut", "/usr/libexec/nut", "/usr/local/ups/sbin")
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
    section = None
    for line in text.splitlines():
        if match := SECTION.match(line):
            section = match[1].strip()
        elif section and (match := PORT.match(line)):
            port = next(g for g in match.groups() if g is not None)
            if os.path.realpath(folder / port) == wanted:
                return section
    return None


def systemd_runs(ups: str) -> bool:
    """True when systemd is PID 1 and has Debian's nut-driver@ unit, so it restarts the driver itself."""
    if not Path("/run/systemd/system").is_dir():
        return False
    names = (f"nut-driver@{ups}.service", "nut-driver@.service")
    return any((Path(folder) / name).exists() for folder in SYSTEMD_UNIT_FOLDERS for name in names)


def find_upsdrvctl() -> str | None:
    """upsdrvctl from $PATH first, then where distributions put it."""
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
