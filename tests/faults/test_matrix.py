"""The matrix in tests/faults/__init__.py stays true: every test it names exists (with the parameter it names),
and every test of this suite is in it."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from tests.faults import MATRIX

HERE = Path(__file__).parent


def function_of(node: str) -> Callable[..., Any]:
    path, _, name = node.partition("::")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    function = getattr(module, name.partition("[")[0], None)
    assert callable(function), f"{node}: no such test"
    return cast(Callable[..., Any], function)


def own_ids(function: Callable[..., Any]) -> set[str]:
    """The ids pytest gives the test's own parameters (its parametrize marks, joined in pytest's order)."""
    combined = [""]
    for mark in getattr(function, "pytestmark", []):
        if mark.name != "parametrize":
            continue
        labels = []
        for value in mark.args[1]:
            if hasattr(value, "values") and hasattr(value, "id"):  # pytest.param(...)
                labels.append(value.id or "-".join(map(str, value.values)))
            else:
                labels.append("-".join(map(str, value)) if isinstance(value, tuple) else str(value))
        combined = [f"{c}-{label}" if c else label for c in combined for label in labels]
    return set(combined) - {""}


@pytest.mark.parametrize("cell", MATRIX, ids=lambda cell: f"{cell.boundary}: {cell.fault}")
def test_every_test_the_matrix_names_exists(cell: Any) -> None:
    assert cell.tests
    for node in cell.tests:
        function = function_of(node)
        if "[" in node:
            assert node.partition("[")[2].rstrip("]") in own_ids(function), f"{node}: no such parameter"


def test_every_test_of_the_suite_is_in_the_matrix() -> None:
    named = {node.partition("[")[0] for cell in MATRIX for node in cell.tests}
    for path in sorted(HERE.glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        module = importlib.import_module(f"tests.faults.{path.stem}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("test_") and function.__module__ == module.__name__:
                assert f"tests/faults/{path.name}::{name}" in named, f"{path.name}::{name} is not in the matrix"
