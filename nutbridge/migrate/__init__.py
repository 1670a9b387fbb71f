"""``nutbridge migrate UPS``: switch a running Solar Protocol v1 node to nutbridge in one step, and back.

It does what ``nutbridge setup`` does (the config, the port file's seed, ups.conf, the units), with a config that
points at v1's own files where they are (day files, device list, poe.log, local.json, the key in .spenv); then
replaces v1's data logger, IP announcer and election by nutbridge@UPS, keeps v1's page builders running
(solar-protocol-pages.service: runner.py without those two jobs), and has Apache proxy Solar Protocol's API
paths to nutbridge. Every file it changes is backed up first and listed in a manifest; ``--undo`` puts each
back and starts v1 again. The node's history is never written. Exit status as ``setup``: 0, 1, 2, 78.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nutbridge import system, v1node
from nutbridge.errors import ConfigError
from nutbridge.migrate.manifest import Manifest, state_dir
from nutbridge.migrate.run import carry_out
from nutbridge.migrate.switch import LISTEN, Migrate
from nutbridge.migrate.undo import undo_plan
from nutbridge.setup_cmd import EX_CONFIG, EX_FAIL, EX_USAGE
from nutbridge.setup_steps import SetupError

# The package's modules: switch (the checks and the steps forward), manifest (what was changed, for the way
# back), undo (the steps back), run (asking, doing and recording each step; the system commands); this module is
# the command (flags, which way, the exit status).


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nutbridge migrate", description=__doc__.split("\n\n")[0])
    p.add_argument("ups", metavar="UPS", help="the ups.conf section to create, e.g. solar")
    p.add_argument("--v1-root", default="/", metavar="DIR", help="where the v1 node's files are (default /)")
    p.add_argument(
        "--source", metavar="URL", default=v1node.SERIAL_URL, help=f"the Tracer (default {v1node.SERIAL_URL}, v1's)"
    )
    p.add_argument("--public-ip", metavar="ADDR", help="the address peers reach this node at, when .spenv has no "
                   "STATIC_HOST_IP")  # fmt: skip
    p.add_argument("--listen", default=LISTEN, metavar="HOST:PORT", help=f"the API, on loopback (default {LISTEN})")
    p.add_argument("--undo", action="store_true", help="put back what migrate changed and start v1 again")
    p.add_argument("--yes", "-y", action="store_true", help="make every change without asking")
    p.add_argument("--dry-run", action="store_true", help="print every step and change nothing")
    p.add_argument("--systemctl", metavar="CMD", help="the systemctl command (default: $NUTBRIDGE_SYSTEMCTL, PATH)")
    p.add_argument("--systemd-dir", metavar="DIR", help="where units go (default V1_ROOT/etc/systemd/system)")
    p.set_defaults(no_systemd=False, port_on_disk=False, driver=False)  # a v1 node keeps the port file
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    args.systemd_dir = args.systemd_dir or str(Path(args.v1_root) / "etc/systemd/system")
    try:
        systemctl = system.systemctl_command(args.systemctl)
    except ValueError as exc:
        print(f"nutbridge migrate: --systemctl: {exc}", file=sys.stderr)
        return EX_USAGE
    title = f"nutbridge migrate {args.ups}" + (" --undo" if args.undo else "")
    kept: list[str] = []
    if args.undo:
        manifest = Manifest.load(state_dir(Path(args.v1_root), args.ups))
        if manifest is None or systemctl is None:
            why = "no systemctl" if manifest else f"no manifest in {state_dir(Path(args.v1_root), args.ups)}"
            print(f"{title}: nothing to undo: {why}", file=sys.stderr)
            return EX_FAIL
        plan = undo_plan(args, systemctl, manifest, kept)
        return carry_out(title, plan, yes=args.yes, dry_run=args.dry_run, manifest=None, watched=[], kept=kept)
    try:
        migrate = Migrate(args, systemctl)
    except ConfigError as exc:
        print(f"{title}: {exc}", file=sys.stderr)
        return EX_USAGE
    try:
        plan = migrate.plan()
    except ConfigError as exc:
        print(f"{title}: {exc}\nNothing was changed.", file=sys.stderr)
        return EX_CONFIG
    except SetupError as exc:
        print(f"{title}: {exc}\nNothing was changed.", file=sys.stderr)
        return EX_FAIL
    migrate.manifest.data["start_line"] = migrate.start_line
    return carry_out(title, plan, yes=args.yes, dry_run=args.dry_run, manifest=migrate.manifest,
                     watched=migrate.watched(), kept=kept)  # fmt: skip
