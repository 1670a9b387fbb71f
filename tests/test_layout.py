"""The tests' own house: their folders follow the package's, and no test module imports another (shared helpers
live in tests/helpers/ and the conftest files), so a test file can move or go without breaking others."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
OWN_FOLDERS = {"faults", "helpers"}  # the fault matrix across every boundary; helpers shared by the tests


def is_test_module(name: str) -> bool:
    """A module name that is a test module (``tests.server.test_api``, ``tests.test_cli``)."""
    parts = name.split(".")
    return parts[0] == "tests" and parts[-1].startswith("test_")


def imported(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, at any depth (``from tests.x import test_y`` counts as ``tests.x.test_y``)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_no_test_module_imports_another() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for folder in (TESTS, ROOT / "bench", ROOT / "examples")
        for path in sorted(folder.rglob("*.py"))
        for line, name in imported(path)
        if is_test_module(name)
    ]
    assert offenders == [], "move what is shared to tests/helpers/ or a conftest.py:\n" + "\n".join(offenders)


def test_the_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import tests.test_cli\nfrom tests.server.test_api import KEY\nfrom tests.server import test_legacy\n"
        "def f():\n    from tests.sources.test_envoy import Gateway\n"
        "from tests.helpers import free_port\nfrom tests.conftest import need\n"
    )
    assert [line for line, name in imported(sample) if is_test_module(name)] == [1, 2, 3, 5]


def test_the_test_folders_follow_the_package() -> None:
    packages = {p.parent.name for p in (ROOT / "nutbridge").glob("*/__init__.py")}
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders - OWN_FOLDERS <= packages, (
        f"a test folder for no package: {sorted(folders - OWN_FOLDERS - packages)}"
    )
    assert all((TESTS / f / "__init__.py").exists() for f in folders), "each test folder is a package (tests.x.test_y)"
    # a module of a subpackage is tested in that subpackage's folder, not at the top
    for test in TESTS.glob("test_*.py"):
        module = test.stem.removeprefix("test_")
        at_the_top = (ROOT / "nutbridge" / f"{module}.py").exists()
        below = [p for p in packages if (ROOT / "nutbridge" / p / f"{module}.py").exists()]
        assert at_the_top or not below, f"{test.name} belongs in tests/{below[0]}/"
