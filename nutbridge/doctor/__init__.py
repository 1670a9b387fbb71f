"""``nutbridge doctor UPS [--json]``: check a running install step by step, saying what is wrong and how to fix it.

One line per check (ok, warn or FAIL), with the fix, the exact command where there is one: the configuration,
the port file (present, writable by nutbridge's user, off tmpfs or seeded from a file that is), ups.conf's
section, the driver, what upsc answers and how fresh it is, upsmon's MONITOR line, and the quirks of the
installed NUT. In driver mode (``driver = nutbridge`` in ups.conf, or ``mode = "driver"`` in [nut]): ups.conf's
section, the link in NUT's driver folder, the driver, its socket (PING, fresh data), upsd connected to it, upsmon.
Exit status 0 when nothing failed, 1 otherwise, 2 for usage.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shlex
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from nutbridge.config import Config, ups_config_file, with_overrides
from nutbridge.doctor.context import FAIL, MOUNTINFO, OK, WARN, Context, Result
from nutbridge.doctor.host import read_ups_conf
from nutbridge.doctor.runner import run_checks
from nutbridge.driver_section import Paths, Section, driver_config
from nutbridge.errors import ConfigError
from nutbridge.nut.upsconf import nut_confpath, nut_statepath, port_path
from nutbridge.nut.version import detect, find_dummy_ups
from nutbridge.system import find_monitor, load_any, nut_user, systemctl_command

# The package's modules: context (what the checks look at, what they say), host (users, mounts, NUT's folders),
# config_checks, port_file_checks, nut_checks (the checks by what they look at), runner (their order, FAIL for
# an error); this module is the command (flags, gather, the screen or JSON).

EX_OK, EX_FAIL, EX_USAGE = 0, 1, 2
SYSTEMD_RUN = "/run/systemd/system"  # present when systemd is PID 1


# ------------------------------------------------------------------ the command


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nutbridge doctor", description=__doc__.split("\n\n")[0])
    p.add_argument("ups", metavar="UPS", help="the UPS to check, as in ups.conf")
    p.add_argument("--json", action="store_true", help="print one JSON object for scripts")
    p.add_argument("--upsd", metavar="HOST[:PORT]", help="where upsc asks (default: upsmon's MONITOR line, localhost)")
    p.add_argument("--upsc", metavar="CMD", help="the upsc command (default: $NUTBRIDGE_UPSC, else upsc)")
    p.add_argument("--systemctl", metavar="CMD", help="the systemctl command (default: $NUTBRIDGE_SYSTEMCTL, PATH)")
    p.add_argument("--no-systemd", action="store_true", help="do not ask systemd; look at pid files instead")
    return p


def gather(args: argparse.Namespace) -> Context:
    """The context from the environment and flags; ConfigError for a bad UPS name, ValueError for a bad CMD."""
    ups: str = args.ups
    confpath = nut_confpath()
    try:
        section = read_ups_conf(confpath).get(ups, {})
    except OSError:
        section = {}
    config_file = ups_config_file(ups)  # enphase-UPS.conf when only that one exists, as the daemon reads it
    if section.get("driver") == "nutbridge" and section.get("config"):
        config_file = Path(section["config"])  # nutbridge-driver reads the file its section names
    config: Config | None = None
    error = None
    try:
        if section.get("driver") == "nutbridge":  # as nutbridge-driver reads it: port is the source, driver mode
            config, _ = driver_config(Section(ups=ups, entries=section, globals={}), Paths.of(ups))
        else:
            config = with_overrides(load_any(config_file))
    except ConfigError as exc:
        error = str(exc)
    port_file = config.nut.port_file if config is not None else None
    driver_mode = section.get("driver") == "nutbridge" or (config is not None and config.nut.mode == "driver")
    if port_file is None:
        port = None if driver_mode else section.get("port")
        port_file = Path(port_path(port, confpath)) if port else nut_statepath() / f"{ups}.dev"
    explicit = args.systemctl or os.environ.get("NUTBRIDGE_SYSTEMCTL")
    use_systemd = not args.no_systemd and (explicit or Path(SYSTEMD_RUN).is_dir())
    systemctl = systemctl_command(args.systemctl) if use_systemd else None
    upsd = args.upsd
    if upsd is None:
        try:
            words = find_monitor(ups, confpath / "upsmon.conf")
        except OSError:
            words = None
        upsd = words[1].partition("@")[2] if words and "@" in words[1] else "localhost"
    dummy_ups = find_dummy_ups()
    return Context(
        ups=ups,
        confpath=confpath,
        config_file=config_file,
        config=config,
        config_error=error,
        port_file=port_file,
        user=nut_user() or pwd.getpwuid(os.geteuid()),
        systemctl=systemctl,
        upsc=shlex.split(args.upsc or os.environ.get("NUTBRIDGE_UPSC") or shutil.which("upsc") or "upsc"),
        upsd=upsd,
        mounts=Path(os.environ.get("NUTBRIDGE_MOUNTS") or MOUNTINFO),
        dummy_ups=dummy_ups,
        nut_version=detect() if dummy_ups and not driver_mode else None,
        driver_mode=driver_mode,
    )


def screen(ups: str, results: list[Result]) -> str:
    width = max(len(r.name) for r in results)
    lines = [f"nutbridge doctor {ups}"]
    for r in results:
        fix = f" — fix: {r.fix}" if r.fix and r.level != OK else ""
        lines.append(f"  {r.level:<4}  {r.name:<{width}}  {r.message}{fix}")
    failed = sum(r.level == FAIL for r in results)
    warned = sum(r.level == WARN for r in results)
    verdict = "all ok" if not failed and not warned else f"{failed} FAIL, {warned} warn"
    lines.append(f"{ups}: {verdict} ({len(results)} checks)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        ctx = gather(args)
    except (ConfigError, ValueError) as exc:
        print(f"nutbridge doctor: {exc}", file=sys.stderr)
        return EX_USAGE
    results = run_checks(ctx)
    failed = any(r.level == FAIL for r in results)
    if args.json:
        print(json.dumps({"ups": ctx.ups, "ok": not failed, "checks": [asdict(r) for r in results]}))
    else:
        print(screen(ctx.ups, results))
    return EX_FAIL if failed else EX_OK
