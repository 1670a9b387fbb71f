"""What ``nutbridge migrate`` changed, kept so ``--undo`` can put it back: the manifest in migrate's state folder
(each file's backup, mode and owner before, the sha256 of what migrate wrote; the Apache modules it enabled;
v1's rc.local line; the steps done), saved 0600 after every step.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from nutbridge.files import replace_atomically


def state_dir(root: Path, ups: str) -> Path:
    """Where migrate keeps its manifest, the backups, the page runner and copies of the history files."""
    return root / "var/lib/nutbridge" / f"migrate-{ups}"


def fingerprint(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


class Manifest:
    """What migrate changed: each file's state before (a backup when it existed) and the sha256 of what it
    wrote, the Apache modules it enabled, v1's rc.local line. Saved (0600) after every step."""

    def __init__(self, folder: Path, data: dict[str, Any] | None = None) -> None:
        self.folder, self.path = folder, folder / "manifest.json"
        self.data: dict[str, Any] = data or {"files": {}, "modules": [], "done": [], "start_line": ""}

    @classmethod
    def load(cls, folder: Path) -> Manifest | None:
        path = folder / "manifest.json"
        return cls(folder, json.loads(path.read_text())) if path.exists() else None

    def watch(self, path: Path) -> None:
        """Record ``path`` as it is, once: its backup, mode and owner."""
        files = self.data["files"]
        if str(path) in files:
            return
        entry: dict[str, Any] = {"backup": None, "after": None}
        (self.folder / "backups").mkdir(parents=True, exist_ok=True, mode=0o700)
        self.folder.chmod(0o700)
        if path.is_file():
            st = path.stat()
            backup = self.folder / "backups" / f"{len(files)}-{path.name}"
            replace_atomically(backup, path.read_bytes(), 0o600)
            entry.update(backup=str(backup), mode=st.st_mode & 0o7777, owner=[st.st_uid, st.st_gid])
        files[str(path)] = entry

    def settle(self) -> None:
        for name, entry in self.data["files"].items():
            entry["after"] = fingerprint(Path(name))
        self.save()

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        replace_atomically(self.path, json.dumps(self.data, indent=1).encode(), 0o600)

    def changed(self) -> list[tuple[Path, dict[str, Any]]]:
        """The files migrate changed, in the order it first touched them."""
        out = []
        for name, entry in self.data["files"].items():
            before = fingerprint(Path(entry["backup"])) if entry["backup"] else None
            if before != entry["after"]:
                out.append((Path(name), entry))
        return out
