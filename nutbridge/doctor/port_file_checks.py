"""The checks of the port file: present, readable by the driver, writable by nutbridge's user, off tmpfs or
seeded from a file that is."""

from __future__ import annotations

import os
from pathlib import Path

from nutbridge.doctor.context import FAIL, OK, WARN, Context, Result
from nutbridge.doctor.host import filesystem_of, group_name, may, owner_text, under
from nutbridge.files import describe
from nutbridge.system import NUT_USER

VOLATILE = ("tmpfs", "ramfs")


# nutbridge@.service's ProtectSystem=full makes these read-only for it, ProtectHome=yes hides these
READ_ONLY_FOR_UNIT = ("/usr", "/boot", "/efi", "/etc")


HIDDEN_FROM_UNIT = ("/home", "/root", "/run/user")


def check_port_file(ctx: Context) -> Result:
    """2. The port file is there (its -nocomms name means comms with the device are lost)."""
    name, path = "port-file", ctx.port_file
    if path.is_file():
        return Result(name, OK, f"{path} is there")
    if ctx.nocomms_file.is_file():
        return Result(
            name,
            FAIL,
            f"comms with the device are lost: nutbridge renamed the port file to {ctx.nocomms_file.name}, "
            "so dummy-ups exited and NUT has no data",
            f"check the device (power, cable, --source) and `journalctl -u nutbridge@{ctx.ups}`; "
            "the file gets its name back at the first good poll",
        )
    if path.exists():
        return Result(name, FAIL, f"{path} is not a file", f"remove it and run `sudo nutbridge setup {ctx.ups} ...`")
    user = ctx.user.pw_name
    seed = ctx.config.nut.seed_file if ctx.config is not None else None
    if seed is not None and seed.is_file():
        return Result(
            name,
            FAIL,
            f"{path} does not exist (nor {ctx.nocomms_file.name}): nutbridge has not started since the last reboot",
            f"{ctx.restart_daemon()}: it creates the port file from its seed {seed}",
        )
    return Result(
        name,
        FAIL,
        f"{path} does not exist (nor {ctx.nocomms_file.name})",
        f"sudo install -o {user} -g {group_name(ctx.user.pw_gid)} -m 0644 /dev/null {seed or path}",
    )


def check_port_file_owner(ctx: Context) -> Result:
    """2. The port file is owned (or at least writable) by nutbridge's user, who may also create files beside it."""
    name, user = "port-file-owner", ctx.user
    present = ctx.present_port_file()
    if present is None:
        return Result(name, WARN, "not checked: no port file")
    target = Path(os.path.realpath(present))
    st = target.stat()
    group = group_name(user.pw_gid)
    if st.st_uid != user.pw_uid and not may(st, user, 2):
        return Result(
            name,
            FAIL,
            f"{user.pw_name} cannot write {target} ({owner_text(st)}), and nutbridge runs as {user.pw_name}",
            f"sudo chown {user.pw_name}:{group} {target}",
        )
    folder = target.parent
    fst = folder.stat()
    if not may(fst, user, 3):
        return Result(
            name,
            FAIL,
            f"{user.pw_name} cannot create files in {folder} ({owner_text(fst)}): nutbridge replaces the port file "
            "by renaming a new one over it",
            f"sudo chgrp {group} {folder} && sudo chmod g+rwx {folder}",
        )
    return Result(name, OK, f"{target}: {owner_text(st)}; {user.pw_name} may write it and its folder")


def check_port_file_disk(ctx: Context) -> Result:
    """2. The port file is where nutbridge@.service can write it, and survives a reboot: not on tmpfs, or on
    tmpfs with a seed file on persistent storage (the seed is checked the same way)."""
    name = "port-file-disk"
    present = ctx.present_port_file()
    target = os.path.realpath(present or ctx.port_file)
    seed = ctx.config.nut.seed_file if ctx.config is not None else None
    off_tmpfs = f"/var/lib/nut/{ctx.ups}.dev"
    move = (
        f"move it, e.g. `sudo install -o {NUT_USER} -g {NUT_USER} -m 0644 {present or ctx.port_file} {off_tmpfs}`, "
        f"then set nut.port_file in {ctx.config_file} and port in {ctx.confpath / 'ups.conf'}"
    )
    problem = unit_cannot_write(ctx, name, target, move)
    if problem is not None:
        return problem
    try:
        found = filesystem_of(Path(target), ctx.mounts)
    except OSError as exc:
        return Result(name, WARN, f"cannot tell the filesystem of {target}: {ctx.mounts}: {describe(exc)}")
    if found is None:
        return Result(name, WARN, f"{ctx.mounts} lists no mount holding {target}")
    point, fstype = found
    if seed is not None:
        return check_seed_disk(ctx, name, f"{target} is on {fstype} ({point})", seed, volatile=fstype in VOLATILE)
    if fstype in VOLATILE:
        return Result(
            name,
            FAIL,
            f"{target} is on {fstype} ({point}): a reboot deletes it, the lines written into it "
            "by hand too, and nutbridge does not start without it",
            f"set nut.seed_file in {ctx.config_file} to a file on persistent storage that holds those lines, "
            f"e.g. `sudo install -o {NUT_USER} -g {NUT_USER} -m 0644 {present or ctx.port_file} {off_tmpfs}` and "
            f'seed_file = "{off_tmpfs}" (nutbridge creates the port file from it at start and copies hand edits '
            f"back); or {move}",
        )
    return Result(name, OK, f"{target} is on {fstype} ({point})")


def check_seed_disk(ctx: Context, name: str, where: str, seed: Path, *, volatile: bool) -> Result:
    """The seed of a port file (``where`` says where that is, ``volatile`` whether a reboot deletes it): present,
    writable by the unit, not on tmpfs."""
    target = os.path.realpath(seed)
    present = ctx.present_port_file()
    copy = f"sudo install -o {NUT_USER} -g {NUT_USER} -m 0644 {present or '/dev/null'} {target}"
    problem = unit_cannot_write(ctx, name, target, f"set nut.seed_file in {ctx.config_file} to a file under /var/lib")
    if problem is not None:
        return problem
    try:
        found = filesystem_of(Path(target), ctx.mounts)
    except OSError as exc:
        return Result(name, WARN, f"cannot tell the filesystem of the seed {target}: {ctx.mounts}: {describe(exc)}")
    if found is None:
        return Result(name, WARN, f"{ctx.mounts} lists no mount holding the seed {target}")
    point, fstype = found
    if fstype in VOLATILE:
        return Result(
            name,
            FAIL,
            f"{where}, and its seed {target} is on {fstype} ({point}) too: a reboot deletes both, with the lines "
            "written by hand, and nutbridge does not start without them",
            f"set nut.seed_file in {ctx.config_file} to a file on persistent storage, e.g. /var/lib/nut/{ctx.ups}.dev",
        )
    if not Path(target).is_file():
        return Result(
            name,
            FAIL if volatile else WARN,
            f"{where}; its seed {target} does not exist: nutbridge creates it when it polls, but without it "
            "nutbridge does not start once the port file is gone (a reboot deletes it from tmpfs)",
            copy,
        )
    return Result(
        name,
        OK,
        f"{where}, seeded from {target} on {fstype} ({point}): the lines written by hand survive a reboot",
    )


def unit_cannot_write(ctx: Context, name: str, target: str, fix: str) -> Result | None:
    """A Result when ``target`` is where nutbridge@.service may not write (a FAIL under systemd), else None."""
    protected = under(target, READ_ONLY_FOR_UNIT) or under(target, HIDDEN_FROM_UNIT)
    if not protected:
        return None
    return Result(
        name,
        FAIL if ctx.systemctl else WARN,
        f"{target} is under {protected}, which nutbridge@.service cannot write (ProtectSystem=full, ProtectHome=yes)",
        fix,
    )
