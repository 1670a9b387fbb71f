"""The process's own limits: enough file descriptors for every listener's connection cap.

Each connection is a descriptor. Debian's default soft limit is 1024 (systemd's hard limit is 524288), fewer
than the sidecar's default cap: at start the soft limit is raised toward what the caps add up to, never past
the hard limit, and a shortfall is said once, with what to set.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

SPARE = 256  # files, the device's socket, peers, the broker, the driver restart's pipes


def raise_open_files(connections: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit to ``connections`` + SPARE where the hard limit allows; the new soft limit."""
    wanted = connections + SPARE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
        return soft
    if target < wanted:
        log.warning(
            "open files are limited to %d, fewer than the %d the connection caps need: lower api.max_connections "
            "or raise LimitNOFILE= in the unit",
            target,
            wanted,
        )
    return target
