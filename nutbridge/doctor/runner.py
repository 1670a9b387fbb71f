"""The list of checks in the order they run, and the runner that turns a check's file error or timeout into its FAIL."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from nutbridge.doctor.config_checks import check_config, check_config_private
from nutbridge.doctor.context import FAIL, Context, Result
from nutbridge.doctor.nut_checks import (
    check_daemon,
    check_driver,
    check_nut_quirks,
    check_nut_version,
    check_ups_conf,
    check_upsc,
    check_upsmon,
)
from nutbridge.doctor.port_file_checks import check_port_file, check_port_file_disk, check_port_file_owner
from nutbridge.files import describe

CHECKS: tuple[Callable[[Context], Result], ...] = (
    check_config,
    check_config_private,
    check_port_file,
    check_port_file_owner,
    check_port_file_disk,
    check_ups_conf,
    check_driver,
    check_daemon,
    check_upsc,
    check_upsmon,
    check_nut_version,
    check_nut_quirks,
)


def check_name(check: Callable[[Context], Result]) -> str:
    """``check_port_file`` → ``port-file``: the name its results carry."""
    return check.__name__.removeprefix("check_").replace("_", "-")


def run_checks(ctx: Context) -> list[Result]:
    """Every check that applies (the daemon's only under systemd); a file error is that check's FAIL."""
    results = []
    for check in CHECKS:
        if check is check_daemon and not ctx.systemctl:
            continue
        try:
            results.append(check(ctx))
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            results.append(
                Result(check_name(check), FAIL, f"{describe(exc)}{where}", f"sudo nutbridge doctor {ctx.ups}")
            )
        except subprocess.TimeoutExpired as exc:
            results.append(Result(check_name(check), FAIL, f"`{' '.join(map(str, exc.cmd))}` did not answer"))
    return results
