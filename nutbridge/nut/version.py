"""Which NUT reads the port file, and what that version expects of it (shared/reference/nut-versions.md).

- ``ups.alarm:`` lines are published up to 2.8.3 and dropped from 2.8.4, which reads an ``ALARM <text>``
  instruction instead (a bare ``ALARM`` clears it). On 2.8.0 an ``ALARM`` line becomes a stray variable.
- An ``ALARM`` token inside ``ups.status`` passes through up to 2.8.2, never clears on 2.8.3, and is
  added by NUT itself from 2.8.4 whenever ``ups.alarm`` is set.
- 2.8.1 and 2.8.2 upsmon shut down at once when comms are lost while on battery (no DEADTIME).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nutbridge.errors import ConfigError

log = logging.getLogger(__name__)

# Where distributions install NUT's drivers when they are not on $PATH.
DRIVER_FOLDERS = ("/lib/nut", "/usr/lib/nut", "/usr/libexec/nut", "/usr/lib/ups/driver", "/usr/local/ups/bin")
# "... driver 0.15 (2.8.0)" up to 2.8.4; "Network UPS Tools 2.8.5 release - ... driver 0.25" from 2.8.5.
VERSION_IN_BANNER = re.compile(r"(?:\(|Network UPS Tools v?)(\d+)\.(\d+)\.(\d+)")
DETECT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True, order=True)
class NutVersion:
    """A NUT release, compared as numbers: 2.8.10 > 2.8.4."""

    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def parse_version(text: str, where: str) -> NutVersion:
    """``2.8.1`` (a Debian suffix such as ``2.8.1-5`` is allowed) → NutVersion, or a ConfigError naming ``where``."""
    match = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)(?:[.+~-][\w.+~-]*)?", text.strip())
    if not match:
        raise ConfigError(f"{where}: {text!r} is not a NUT version; write it as 2.8.1")
    return NutVersion(int(match[1]), int(match[2]), int(match[3]))


V2_8_3 = NutVersion(2, 8, 3)
V2_8_4 = NutVersion(2, 8, 4)


@dataclass(frozen=True, slots=True)
class Dialect:
    """How alarms are written for one NUT version; ``version`` None = unknown, so write every form."""

    version: NutVersion | None

    @property
    def alarm_line(self) -> bool:
        """Write ``ups.alarm: <text>`` (read up to 2.8.3)."""
        return self.version is None or self.version < V2_8_4

    @property
    def alarm_instruction(self) -> bool:
        """Write ``ALARM <text>`` / bare ``ALARM`` (read from 2.8.4; a stray variable before)."""
        return self.version is None or self.version >= V2_8_4

    @property
    def alarm_token(self) -> bool:
        """Keep ``ALARM`` in ups.status (up to 2.8.2 only: 2.8.3 never clears it, 2.8.4 adds it itself)."""
        return self.version is not None and self.version < V2_8_3

    def __str__(self) -> str:
        return f"NUT {self.version}" if self.version else "NUT of unknown version"


def find_dummy_ups() -> Path | None:
    """dummy-ups from $PATH first, then NUT's driver folders."""
    import shutil  # here: only the port file's dialect looks for it, never nutbridge-driver

    found = shutil.which("dummy-ups")
    if found:
        return Path(found)
    for folder in DRIVER_FOLDERS:
        candidate = Path(folder) / "dummy-ups"
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def detect() -> NutVersion | None:
    """The installed NUT's version from ``dummy-ups -V``, or None."""
    program = find_dummy_ups()
    if program is None:
        log.warning("dummy-ups not found on $PATH or in %s; set [nut] version", ", ".join(DRIVER_FOLDERS))
        return None
    try:
        done = subprocess.run([str(program), "-V"], capture_output=True, text=True, timeout=DETECT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("%s -V failed (%s); set [nut] version", program, exc)
        return None
    match = VERSION_IN_BANNER.search(done.stdout + done.stderr)
    if not match:
        log.warning("%s -V printed no version; set [nut] version", program)
        return None
    return NutVersion(int(match[1]), int(match[2]), int(match[3]))
