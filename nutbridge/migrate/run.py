"""How migrate's plans are carried out, both ways: each step asked (or ``--yes``), done, and recorded in the
manifest with the files it changed; a summary and the exit status; and the system commands the steps run
(a2enmod, apachectl, systemctl, systemd-run), each turned into a SetupError when it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from nutbridge.files import describe
from nutbridge.migrate.manifest import Manifest
from nutbridge.setup_cmd import EX_FAIL, EX_OK, ask
from nutbridge.setup_steps import Plan, SetupError

COMMAND_TIMEOUT = 120.0


def run_command(*argv: str) -> None:
    """Run a system command found on $PATH (a2enmod, apachectl, systemd-run); SetupError when it fails."""
    found = shutil.which(argv[0])
    if found is None:
        raise SetupError(f"{argv[0]} not found on $PATH")
    try:
        done = subprocess.run([found, *argv[1:]], capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"`{' '.join(argv)}` did not run: {exc}") from exc
    if done.returncode != 0:
        said = " ".join((done.stderr or done.stdout).split())[-300:]
        raise SetupError(f"`{' '.join(argv)}` failed (exit status {done.returncode}): {said or 'no message'}")


def carry_out(title: str, plan: Plan, *, yes: bool, dry_run: bool, manifest: Manifest | None,
              watched: list[Path], kept: list[str]) -> int:  # fmt: skip
    """Ask, do each step (recording what it changes in ``manifest``), print a summary; the exit status."""
    print(title + (" (dry run: nothing is changed)" if dry_run else ""))
    failed = False
    for i, step in enumerate(plan.steps):
        if dry_run:
            print(f"  would: {step.title}")
            print("".join(f"      {line}\n" for line in step.preview.splitlines()), end="")
            continue
        answer = True if yes else ask(step.title)
        if answer is False:
            print(f"  skipped: {step.title}")
            continue
        reason = "no answer on stdin; run with --yes to make every change" if answer is None else None
        try:
            if reason is None:
                for path in watched if manifest else []:
                    manifest.watch(path)  # type: ignore[union-attr]
                step.action()
        except SetupError as exc:
            reason = str(exc)
        except OSError as exc:
            reason = describe(exc) + (f" ({exc.filename})" if exc.filename else "")
            reason += "; run it as root (sudo)" if os.geteuid() != 0 else ""
        finally:
            if manifest is not None and manifest.data["files"]:
                manifest.settle()
        if reason is None:
            print(f"  done: {step.title}")
            if manifest is not None:
                manifest.data["done"].append(step.title)
                manifest.save()
            continue
        print(f"{title}: FAILED: {step.title}: {reason}", file=sys.stderr)
        for rest in plan.steps[i + 1 :]:
            print(f"  not done: {rest.title}")
        failed = True
        break
    for note in [*plan.notes, *kept]:
        print(f"  note: {note}")
    return EX_FAIL if failed or plan.refused or kept else EX_OK  # kept: files undo left as they are
