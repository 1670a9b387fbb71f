"""The lists of checks in the order they run (the port file's, driver mode's), and the runner that turns a
check's file error or timeout into its FAIL."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from nutbridge.doctor.config_checks import check_config, check_config_private
from nutbridge.doctor.context import FAIL, Context, Result
from nutbridge.doctor.driver_checks import (
    check_driver_link,
    check_driver_process,
    check_driver_socket,
    check_driver_ups_conf,
    check_driver_upsc,
)
from nutbridge.doctor.load_checks import check_load_terminal
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

CHECKS: tuple[Callable[[Context], Result | None], ...] = (
    check_config,
    check_config_private,
    check_port_file,
    check_port_file_owner,
    check_port_file_disk,
    check_ups_conf,
    check_driver,
    check_daemon,
    check_upsc,
    check_load_terminal,
    check_upsmon,
    check_nut_version,
    check_nut_quirks,
)

# Driver mode: no port file, no dummy-ups, no nutbridge@ unit; the version's quirks are the port file's.
DRIVER_CHECKS: tuple[Callable[[Context], Result | None], ...] = (
    check_config,
    check_config_private,
    check_driver_ups_conf,
    check_driver_link,
    check_driver_process,
    check_driver_socket,
    check_driver_upsc,
    check_load_terminal,
    check_upsmon,
)


def check_name(check: Callable[[Context], Result | None]) -> str:
    """``check_port_file`` → ``port-file``: the name its results carry (``check_driver_process``: driver)."""
    return {"check_driver_process": "driver", "check_driver_upsc": "upsc"}.get(check.__name__) or (
        check.__name__.removeprefix("check_").replace("_", "-")
    )


def run_checks(ctx: Context) -> list[Result]:
    """Every check that applies (the daemon's only under systemd); a file error is that check's FAIL."""
    results = []
    for check in DRIVER_CHECKS if ctx.driver_mode else CHECKS:
        if check is check_daemon and not ctx.systemctl:
            continue
        try:
            result = check(ctx)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            results.append(
                Result(check_name(check), FAIL, f"{describe(exc)}{where}", f"sudo nutbridge doctor {ctx.ups}")
            )
        except subprocess.TimeoutExpired as exc:
            results.append(Result(check_name(check), FAIL, f"`{' '.join(map(str, exc.cmd))}` did not answer"))
        else:
            if result is not None:  # None: the check does not apply to this device
                results.append(result)
    return results
