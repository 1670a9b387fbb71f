"""What the start-up benches (driver_mode, cold_start) share: which source tree's nutbridge a child process
imports, and whether that tree has its bytecode.

A tree is a checkout; a child imports its package through PYTHONPATH and runs from inside it, so ``-m`` and ``-c``
find it before the installed one. ``--against OLD_TREE`` alternates start-ups of another tree (``git archive``
of an older commit) with this one's, so both meet the same minute of this shared machine.

Bytecode: an install leaves every module compiled (pip compiles a wheel's modules, Debian's packages ship or
compile .pyc), so by default each tree's package is byte-compiled first. A session with PYTHONDONTWRITEBYTECODE=1
and no .pyc (this VM's, and so its earlier figures) compiles every nutbridge module from source at each start,
about 45 ms here; ``--no-bytecode`` measures that: the package's __pycache__ folders are removed and none is
written.
"""

from __future__ import annotations

import argparse
import compileall
import shutil
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Tree:
    """A source tree whose ``nutbridge`` package a child process imports."""

    label: str
    path: Path

    def env(self, base: dict[str, str], *, bytecode: bool) -> dict[str, str]:
        """``base`` with this tree first on the import path (and, without bytecode, none written)."""
        env = {**base, "PYTHONPATH": str(self.path)}
        if not bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def prepare(self, *, bytecode: bool) -> None:
        """Compile the package, as an install does; or remove its bytecode, so every start compiles it."""
        package = self.path / "nutbridge"
        if not (package / "__init__.py").exists():
            raise SystemExit(f"{self.path}: no nutbridge package there")
        if bytecode:
            compileall.compile_dir(package, quiet=1)
        else:
            for folder in package.rglob("__pycache__"):
                shutil.rmtree(folder)


def add_arguments(parser: argparse.ArgumentParser, runs: int) -> None:
    """The options every start-up bench takes (``runs``: start-ups of each tree unless --runs says)."""
    parser.add_argument("--runs", type=int, default=runs, help=f"start-ups of each tree (default {runs})")
    parser.add_argument("--against", metavar="TREE", type=Path, help="alternate with another tree's start-ups")
    parser.add_argument("--no-bytecode", action="store_true", help="no .pyc for nutbridge: compiled at each start")


def trees(args: argparse.Namespace) -> list[Tree]:
    """The trees to measure, each prepared: this one, and the one ``--against`` names (first, when given)."""
    found = [Tree("this tree", REPO)]
    if args.against is not None:
        found.insert(0, Tree(f"{args.against}", args.against.resolve()))
    for tree in found:
        tree.prepare(bytecode=not args.no_bytecode)
    return found


def bytecode_note(args: argparse.Namespace) -> str:
    """How the packages were imported, for the printed figures."""
    if args.no_bytecode:
        return "no bytecode: every nutbridge module compiled at each start"
    return "bytecode compiled first, as an install leaves it"
