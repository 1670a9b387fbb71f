"""The checks of nutbridge's configuration: it loads and validates, and a file holding a secret is private."""

from __future__ import annotations

import os

from nutbridge.doctor.context import FAIL, OK, WARN, Context, Result
from nutbridge.doctor.host import group_name, may, owner_text
from nutbridge.files import describe


def check_config(ctx: Context) -> Result:
    """1. The configuration exists, parses and validates (the daemon's own loader)."""
    name, path = "config", ctx.config_file
    if not path.exists():
        return Result(name, FAIL, f"{path} does not exist", f"sudo nutbridge setup {ctx.ups} --source URL")
    if ctx.config is None:
        if not os.access(path, os.R_OK):
            return Result(name, FAIL, str(ctx.config_error), f"run it as root: sudo nutbridge doctor {ctx.ups}")
        return Result(
            name,
            FAIL,
            str(ctx.config_error),
            f"edit {path} as the message says; then `nutbridge -c {path} -s` tries one poll",
        )
    config = ctx.config
    kind = config.source.kind if config.source else "none"
    return Result(
        name,
        OK,
        f"{path} is valid: source {kind}, "
        + ("NUT's driver (driver mode), " if ctx.driver_mode else f"port file {config.nut.port_file}, ")
        + f"a poll every {config.monitor.poll_interval:g} s",
    )


def check_config_private(ctx: Context) -> Result:
    """1. The configuration is private (it may hold secrets) and readable by the user nutbridge runs as."""
    name, path, user = "config-private", ctx.config_file, ctx.user
    try:
        st = path.stat()
    except OSError as exc:
        return Result(name, WARN, f"not checked: {path}: {describe(exc)}")
    if st.st_mode & 0o077:
        return Result(
            name,
            FAIL,
            f"{path} is open to group or others ({owner_text(st)}); it may hold secrets (passwords, keys)",
            f"sudo chmod 600 {path}",
        )
    if not may(st, user, 4):
        return Result(
            name,
            FAIL,
            f"{user.pw_name} cannot read {path} ({owner_text(st)}), and nutbridge runs as {user.pw_name}",
            f"sudo chown {user.pw_name}:{group_name(user.pw_gid)} {path}",
        )
    return Result(name, OK, f"{path}: {owner_text(st)}")
