"""What the commands share about the system they run on: NUT's user, the systemctl to ask, upsmon's MONITOR
line, the configuration file of either kind, and logging to stderr or the journal. cli, setup, doctor, capture
and migrate import it; it imports none of them."""

from __future__ import annotations

import logging
import os
import pwd
from pathlib import Path

from nutbridge.config import Config, load

NUT_USER = "nut"


def nut_user() -> pwd.struct_passwd | None:
    """NUT's user (Debian's nut-server package creates it), or None."""
    try:
        return pwd.getpwnam(NUT_USER)
    except KeyError:
        return None


def systemctl_command(flag: str | None) -> list[str] | None:
    """``--systemctl CMD``, else $NUTBRIDGE_SYSTEMCTL, else systemctl from $PATH; None when there is none.
    ValueError for a command line with an unbalanced quote."""
    import shlex  # here and below: nutbridge-driver, which imports this module, never splits or searches
    import shutil

    text = flag or os.environ.get("NUTBRIDGE_SYSTEMCTL")
    if text:
        return shlex.split(text)
    found = shutil.which("systemctl")
    return [found] if found else None


def find_monitor(ups: str, upsmon_conf: Path) -> list[str] | None:
    """The words of upsmon.conf's MONITOR line for ``ups`` (``MONITOR ups@host POWER USER PASSWORD TYPE``),
    or None. OSError when the file cannot be read."""
    import shlex

    for line in upsmon_conf.read_text(errors="replace").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            words = line.split()
        if len(words) >= 2 and words[0].upper() == "MONITOR" and words[1].partition("@")[0] == ups:
            return words
    return None


def load_any(path: Path) -> Config:
    """A nutbridge TOML file, or (any other name) an enphase-monitor configuration file."""
    from nutbridge import enphase_conf

    return enphase_conf.load(path) if enphase_conf.is_enphase_conf(path) else load(path)


def setup_logging(debug: int) -> None:
    """Log to stderr; under systemd the journal adds the time, elsewhere we do."""
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format=stamp + "%(levelname)s %(message)s")
    # pymodbus logs frame dumps at ERROR on every failure; we log one line per state change instead.
    logging.getLogger("pymodbus").setLevel(logging.DEBUG if debug >= 2 else logging.CRITICAL)
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    # httpx logs every request at INFO (with its URL, where a token could one day travel): only its warnings
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.DEBUG if debug >= 2 else logging.WARNING)
