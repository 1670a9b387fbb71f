"""The port file's seed: a persistent copy of its hand-written lines, so the port file itself may live on tmpfs.

A port file rewritten at every poll wears an SD card out; on tmpfs (``/run/nut``) it costs the card nothing, but
a reboot empties it. With ``[nut] seed_file`` the seed, on persistent storage, takes over the port file's
"must exist" role: at start, when neither the port file nor its ``-nocomms`` twin exists, the port file is
created from the seed; when a person edits the hand-written lines of the port file, they are copied to the
seed (atomically, fsynced, its folder too), so they survive the next reboot. Only then: a poll that finds the
file as nutbridge left it never touches the seed. The port file is the one to edit; an edit of the seed alone
is overwritten by the port file's lines at the next start or edit.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from nutbridge.errors import PortFileError
from nutbridge.files import TEMP_SUFFIX, describe, glob_escape, identity, read_capped, replace_atomically

log = logging.getLogger(__name__)

MAX_SIZE = 256 * 1024  # a port file (and so its seed) is a few hundred bytes; anything this big is not one
NEW_MODE = 0o644  # a seed nutbridge creates itself (it holds no secret; dummy-ups' user reads its copy)


class Seed:
    """The seed file; its last known identity and text are kept, so a check costs one stat."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._known: tuple[tuple[int, int, int], str] | None = None
        self._failed = False  # a write failed and was warned about

    def __str__(self) -> str:
        return str(self.path)

    @property
    def target(self) -> Path:
        """The file itself: a symlinked seed stays a link, its target is replaced."""
        return Path(os.path.realpath(self.path))

    def start(self) -> tuple[str, int, tuple[int, int] | None]:
        """The text, mode and owner for a port file created from the seed (the seed's: as root, a port file
        owned by root would be one the unit's user cannot write); PortFileError when there is no seed."""
        try:
            st = self.target.stat()
            text = self._read(st)
        except FileNotFoundError:
            raise PortFileError(
                f"the port file does not exist, nor its seed {self.path} (nut.seed_file), which holds the lines "
                f"written by hand; create the seed first, e.g. with 'touch {self.path}'"
            ) from None
        except OSError as exc:
            raise PortFileError(f"cannot read the port file's seed {self.path}: {describe(exc)}") from exc
        return text, st.st_mode & 0o666, (st.st_uid, st.st_gid) if os.geteuid() == 0 else None

    def keep(self, hand: str) -> bool:
        """Make the seed hold ``hand`` (the port file's hand-written lines); True when it does, now or already.

        A failed write is warned about once, and the port file is written all the same.
        """
        try:
            try:
                st = self.target.stat()
            except FileNotFoundError:
                st = None
            if st is not None and self._read(st) == hand:
                return True
            mode = NEW_MODE if st is None else st.st_mode & 0o7777
            replace_atomically(self.target, hand.encode("utf-8", "surrogateescape"), mode)
            self._known = (identity(self.target.stat()), hand)
        except (OSError, PortFileError) as exc:
            if not self._failed:
                self._failed = True
                reason = describe(exc) if isinstance(exc, OSError) else str(exc)
                log.warning(
                    "cannot update the port file's seed %s: %s; lines written by hand since the last update "
                    "are lost at a reboot",
                    self.path,
                    reason,
                )
            return False
        if self._failed:
            self._failed = False
            log.warning("the port file's seed %s is written again", self.path)
        log.info("copied the port file's hand-written lines to its seed %s", self.path)
        return True

    def _read(self, st: os.stat_result) -> str:
        """The seed's text (``st`` its stat), read again only when its identity changed."""
        known = self._known
        if known is not None and known[0] == identity(st):
            return known[1]
        data = read_capped(self.target, MAX_SIZE)
        if data is None:
            raise PortFileError(f"the port file's seed {self.path} is over {MAX_SIZE // 1024} KiB")
        text = data.decode("utf-8", "surrogateescape")
        self._known = (identity(st), text)
        return text

    def stale_temps(self) -> list[Path]:
        """Temp files a killed write of the seed left beside it."""
        target = self.target
        return list(target.parent.glob(f".{glob_escape(target.name)}.*{TEMP_SUFFIX}"))
