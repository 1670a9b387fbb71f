"""The switch back (``--undo``): the manifest's changes undone in the reverse order, each file put back only if
nobody changed it since, and v1 started again as rc.local starts it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import time
from pathlib import Path
from typing import Any

from nutbridge import v1node
from nutbridge.files import replace_atomically
from nutbridge.migrate.manifest import Manifest, fingerprint
from nutbridge.migrate.run import run_command
from nutbridge.migrate.switch import APACHE_CONF, PAGES
from nutbridge.setup_steps import Plan, Step
from nutbridge.v1node import V1Node


def undo_plan(args: argparse.Namespace, systemctl: list[str], manifest: Manifest, kept: list[str]) -> Plan:
    """Undo what the manifest says migrate did, in the reverse order: the page builders, Apache's proxy and
    nutbridge stopped, each changed file put back (or removed) unless it changed since, v1 started again."""
    ups, done, steps = args.ups, set(manifest.data["done"]), []

    def sysctl(*words: str) -> Step:
        return Step(f"Run `systemctl {' '.join(words)}`", functools.partial(run_command, *systemctl, *words))

    def command(*argv: str) -> Step:
        return Step(f"Run `{' '.join(argv)}`", functools.partial(run_command, *argv))

    if f"Run `systemctl enable --now {PAGES}`" in done:
        steps.append(sysctl("disable", "--now", PAGES))
    if manifest.data.get("conf"):
        steps.append(command("a2disconf", "-q", APACHE_CONF))
    steps += [command("a2dismod", "-q", m) for m in reversed(manifest.data["modules"])]
    if manifest.data.get("conf") or manifest.data["modules"]:
        steps.append(sysctl("reload", "apache2"))
    units = [u for u in (f"nutbridge@{ups}", f"nut-driver@{ups}") if f"Run `systemctl enable {u}`" in done]
    if units:
        steps.append(sysctl("disable", "--now", *units))
    for path, entry in manifest.changed():
        what = f"Put back {path} as it was" if entry["backup"] else f"Remove {path}"
        steps.append(Step(what, functools.partial(restore, path, entry, kept)))
    steps.append(sysctl("daemon-reload"))
    if any(p.name == "ups.conf" for p, _ in manifest.changed()):
        steps.append(sysctl("try-reload-or-restart", "nut-server.service"))
    if any(title.startswith("Stop v1's logger") for title in done):
        steps.append(start_v1(V1Node(Path(args.v1_root)), manifest.data["start_line"]))
    aside = manifest.folder.with_name(f"{manifest.folder.name}.undone-{dt.datetime.now():%Y%m%d-%H%M%S}")

    def set_aside() -> None:
        if kept:  # the operator decides about those files; their backups stay
            kept.append(f"{manifest.folder} is kept, with the backups; move it aside once those files are settled")
            return
        manifest.folder.rename(aside)

    steps.append(Step(f"Move {manifest.folder} (the manifest, backups, history copies) to {aside}", set_aside))
    return Plan(steps=steps, kept=[], notes=[])


def start_v1(node: V1Node, line: str) -> Step:
    """Start v1 now with rc.local's own line, in a transient unit (as rc-local.service would at boot), unless
    its logger or runner runs already."""
    unit = f"solar-protocol-v1-{int(time.time())}"

    def start() -> None:
        if running := v1node.v1_jobs(node):
            print(f"  note: v1 runs already (pid {running[0][0]}): not started again")
            return
        run_command("systemd-run", f"--unit={unit}", "--property=Type=oneshot", "--property=RemainAfterExit=yes",
                    "--no-block", "/bin/sh", "-c", line)  # fmt: skip

    return Step(f"Start v1 now, as rc.local does at boot (`systemd-run --unit={unit} … {line}`)", start)


def restore(path: Path, entry: dict[str, Any], kept: list[str]) -> None:
    """Put ``path`` back as it was before migrate (remove it when migrate made it), unless it changed since."""
    if fingerprint(path) != entry["after"]:
        had = f"its backup is {entry['backup']}" if entry["backup"] else "migrate had created it"
        kept.append(f"{path} changed since migrate: kept as it is; {had}")
        return
    if entry["backup"] is None:
        path.unlink(missing_ok=True)
        if path.parent.name.endswith(".service.d") and not any(path.parent.iterdir()):
            path.parent.rmdir()
        return
    owner = (entry["owner"][0], entry["owner"][1]) if os.geteuid() == 0 else None
    replace_atomically(path, Path(entry["backup"]).read_bytes(), entry["mode"], owner=owner)
