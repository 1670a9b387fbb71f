"""``nutbridge setup UPS --source URL``: a new install in one go, each change asked first.

It writes $NUT_CONFPATH/nutbridge-UPS.toml (0600, owned by nut) from the shipped sample, creates the seed
$NUT_STATEPATH/UPS.dev (owned by nut; an existing one is kept) of the port file $NUTBRIDGE_RUNPATH/UPS.dev on
tmpfs, which nutbridge makes from it at each start (``--port-on-disk``: the port file itself in
$NUT_STATEPATH, written to the disk at every poll), appends [UPS] to ups.conf (never twice; the
rest stays byte for byte), installs the systemd unit and the driver's restart drop-in when they are missing,
and enables and starts nut-driver@UPS and nutbridge@UPS. With ``--driver`` nutbridge is NUT's driver instead
(docs/nut.md): the configuration says ``mode = "driver"``, [UPS] names ``driver = nutbridge`` with the URL as its
``port`` and the file as its ``config``, NUT's driver folder gets a ``nutbridge`` link to nutbridge-driver, and
only nut-driver@UPS is enabled and started (no port file, no nutbridge@ unit). Exit status 0 done, 1 a step
failed or was refused, 2 usage, 78 a bad URL or configuration.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

from nutbridge.errors import ConfigError
from nutbridge.files import describe
from nutbridge.setup_steps import Plan, Setup, SetupError, Step
from nutbridge.system import find_monitor, systemctl_command

# This module is the command (flags, asking, carrying out the plan); the steps are in setup_steps.py, the texts
# it writes in setup_texts.py, what doctor and cli share in system.py.

EX_OK, EX_FAIL, EX_USAGE, EX_CONFIG = 0, 1, 2, 78
SYSTEMD_DIR = "/etc/systemd/system"


def ask(question: str) -> bool | None:
    """Yes (the default) or no from stdin; None when stdin has no answer left."""
    while True:
        print(f"{question}? [Y/n] ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            print()
            return None
        answer = line.strip().lower()
        if answer in ("", "y", "yes"):
            return True
        if answer in ("n", "no"):
            return False
        print("  please answer y or n")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nutbridge setup", description=__doc__.split("\n\n")[0])
    p.add_argument("ups", metavar="UPS", help="the ups.conf section to create, e.g. solar")
    p.add_argument(
        "--source",
        metavar="URL",
        required=True,
        help="the Tracer: rtu:///dev/ttyUSB0?baudrate=115200, tcp://HOST:502, rtu+tcp://HOST:PORT",
    )
    p.add_argument("--yes", "-y", action="store_true", help="make every change without asking")
    p.add_argument("--dry-run", action="store_true", help="print every step and change nothing")
    p.add_argument("--no-systemd", action="store_true", help="skip the systemd unit, drop-in and systemctl steps")
    on_disk = "the port file in $NUT_STATEPATH, written at every poll, not on tmpfs seeded from there"
    p.add_argument("--port-on-disk", action="store_true", help=on_disk)
    driver = "nutbridge as NUT's driver (driver = nutbridge in ups.conf, started by upsdrvctl): no port file"
    p.add_argument("--driver", action="store_true", help=driver)
    p.add_argument("--systemctl", metavar="CMD", help="the systemctl command (default: $NUTBRIDGE_SYSTEMCTL, PATH)")
    p.add_argument("--systemd-dir", metavar="DIR", default=SYSTEMD_DIR, help=f"where units go (default {SYSTEMD_DIR})")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.driver and args.port_on_disk:
        print("nutbridge setup: --port-on-disk is for the port file; --driver has none", file=sys.stderr)
        return EX_USAGE
    try:
        systemctl = None if args.no_systemd else systemctl_command(args.systemctl)
    except ValueError as exc:
        print(f"nutbridge setup: --systemctl: {exc}", file=sys.stderr)
        return EX_USAGE
    try:
        setup = Setup(args, systemctl)
    except ConfigError as exc:  # the UPS name
        print(f"nutbridge setup: {exc}", file=sys.stderr)
        return EX_USAGE
    try:
        plan = setup.plan()
    except ConfigError as exc:
        print(f"nutbridge setup: {exc}\nNothing was changed.", file=sys.stderr)
        return EX_CONFIG
    except SetupError as exc:
        print(f"nutbridge setup: {exc}\nNothing was changed.", file=sys.stderr)
        return EX_FAIL
    return carry_out(setup, plan, yes=args.yes, dry_run=args.dry_run)


def run_step(step: Step, ups: str) -> str | None:
    """Make one change; None when done, else why it failed."""
    try:
        step.action()
    except SetupError as exc:
        return str(exc)
    except OSError as exc:
        reason = describe(exc) + (f" ({exc.filename})" if exc.filename else "")
        if exc.errno in (errno.EPERM, errno.EACCES) and os.geteuid() != 0:
            reason += f"; run it as root: sudo nutbridge setup {ups} ..."
        return reason
    return None


def carry_out(setup: Setup, plan: Plan, *, yes: bool, dry_run: bool) -> int:
    """Ask, do each step, print a summary; the exit status."""
    ups = setup.ups
    print(f"nutbridge setup {ups}" + (" (dry run: nothing is changed)" if dry_run else ""))
    for kept in plan.kept:
        print(f"  already there: {kept}")
    summary: list[tuple[str, str]] = [("kept", kept) for kept in plan.kept]
    failed = False
    for i, step in enumerate(plan.steps):
        if dry_run:
            print(f"  would: {step.title}")
            print("".join(f"      {line}\n" for line in step.preview.splitlines()), end="")
            summary.append(("would", step.title))
            continue
        answer = True if yes else ask(step.title)
        if answer is False:
            summary.append(("skipped", step.title))
            continue
        reason = "no answer on stdin; run with --yes to make every change" if answer is None else run_step(step, ups)
        if reason is None:
            print(f"  done: {step.title}")
            summary.append(("done", step.title))
            continue
        print(f"nutbridge setup: FAILED: {step.title}: {reason}", file=sys.stderr)
        summary.append(("FAILED", f"{step.title}: {reason}"))
        summary += [("not done", s.title) for s in plan.steps[i + 1 :]]
        failed = True
        break
    if not dry_run:
        print(f"\nSummary for {ups}:")
        for outcome, what in summary:
            print(f"  {outcome:<9}{what}")
    for note in plan.notes:
        print(f"  note: {note}")
    if not dry_run and not failed:
        print_monitor_hint(setup)
    print(f"Next: `nutbridge doctor {ups}` checks the install; `upsc {ups}@localhost` shows what NUT sees.")
    return EX_FAIL if failed or plan.refused else EX_OK


def print_monitor_hint(setup: Setup) -> None:
    """Say so when upsmon.conf has no MONITOR line for the UPS yet (setup cannot know the password)."""
    try:
        monitored = find_monitor(setup.ups, setup.confpath / "upsmon.conf") is not None
    except OSError:
        monitored = True  # unreadable or missing: the doctor says so, with the fix
    if not monitored:
        print(
            f"  note: upsmon.conf has no MONITOR line for {setup.ups} yet, so nothing shuts this host down: add "
            f"`MONITOR {setup.ups}@localhost 1 USER PASSWORD primary` (a user from upsd.users)"
        )
