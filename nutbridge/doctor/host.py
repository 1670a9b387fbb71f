"""What the checks read off the host: users and groups, permission bits, mounts, ups.conf, live pids, and
the folders where NUT keeps its state."""

from __future__ import annotations

import grp
import os
import pwd
import re
from pathlib import Path

from nutbridge.nut.upsconf import MAX_UPS_CONF, parse_sections

NUT_STATE_FOLDERS = ("/run/nut", "/var/run/nut", "/var/state/ups")  # NUT's own state folder, where builds put it


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def may(st: os.stat_result, user: pwd.struct_passwd, bits: int) -> bool:
    """Whether ``user`` has the permission ``bits`` (4 read, 2 write, 1 search) by the mode bits of ``st``."""
    if user.pw_uid == 0:
        return True
    if st.st_uid == user.pw_uid:
        shift = 6
    elif st.st_gid in os.getgrouplist(user.pw_name, user.pw_gid):
        shift = 3
    else:
        shift = 0
    return (st.st_mode >> shift) & bits == bits


def closed_to(path: Path, user: pwd.struct_passwd, bits: int) -> Path | None:
    """The first of ``path``'s folders that ``user`` may not search, or ``path`` itself if it lacks ``bits``;
    None when the user gets through (or when something is missing: other checks say that)."""
    target = path.resolve()
    try:
        for folder in reversed(target.parents):
            if not may(folder.stat(), user, 1):
                return folder
        return None if may(target.stat(), user, bits) else target
    except OSError:
        return None


def owner_text(st: os.stat_result) -> str:
    return f"owner {user_name(st.st_uid)}:{group_name(st.st_gid)}, mode {st.st_mode & 0o7777:04o}"


def unescape_mount(text: str) -> str:
    """A mount point as the kernel escapes it (``\\040`` for a space)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), text)


def filesystem_of(path: Path, mounts: Path) -> tuple[str, str] | None:
    """(mount point, filesystem type) of the mount holding ``path``, from a /proc/self/mountinfo or a
    /proc/mounts style file; the longest mount point wins, and of two at one point the later (it covers the other)."""
    target = os.path.realpath(path)
    best: tuple[str, str] | None = None
    for line in mounts.read_text(errors="replace").splitlines():
        left, sep, right = line.partition(" - ")
        if sep:  # mountinfo: ID PARENT MAJ:MIN ROOT POINT OPTIONS ... - TYPE SOURCE OPTIONS
            fields, rest = left.split(), right.split()
            if len(fields) < 5 or not rest:
                continue
            point, fstype = unescape_mount(fields[4]), rest[0]
        else:  # mounts: SOURCE POINT TYPE OPTIONS ...
            fields = line.split()
            if len(fields) < 3:
                continue
            point, fstype = unescape_mount(fields[1]), fields[2]
        inside = point in ("/", target) or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, fstype)
    return best


def under(path: str, folders: tuple[str, ...]) -> str | None:
    """The first of ``folders`` that holds ``path``."""
    return next((f for f in folders if path == f or path.startswith(f + "/")), None)


def read_ups_conf(confpath: Path) -> dict[str, dict[str, str]]:
    """ups.conf's sections (OSError when it cannot be read)."""
    return parse_sections((confpath / "ups.conf").read_text(errors="replace")[:MAX_UPS_CONF])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user
    return True


def nut_state_folders() -> list[Path]:
    """Where NUT's drivers keep their sockets: $NUT_STATEPATH, else where NUT's builds put them."""
    env = os.environ.get("NUT_STATEPATH")
    return [Path(env)] if env else [Path(p) for p in NUT_STATE_FOLDERS]


def nut_pid_folders() -> list[Path]:
    """Where NUT's drivers write their pid files: $NUT_ALTPIDPATH, then the state folders."""
    env = os.environ.get("NUT_ALTPIDPATH")
    return ([Path(env)] if env else []) + nut_state_folders()
