"""The house drawn from its imports: every module sits in one declared layer, imports only from its own layer or
those below, and no import cycle runs among modules. Every ``import`` and ``from … import`` counts, wherever
it is written: in a function (a lazy import is still a dependency) or under ``TYPE_CHECKING`` (so is a type).

Also: no long-lived task starts outside a TaskGroup (a bare ``create_task`` loses its exception and escapes
cancellation), and every exception nutbridge defines descends from ``NutbridgeError`` and is named in the tree
errors.py draws.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

import nutbridge
from nutbridge import errors
from nutbridge.errors import NutbridgeError

PACKAGE = Path(nutbridge.__file__).parent

# The layers, lowest first. A module may import from its own layer and from those below it, never from one above.
# ``name`` is that module; ``name.*`` is a package and everything in it. The longest pattern that matches wins, so
# a module can sit apart from its package (the NUT mapping below the port file, the history writer beside the log).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # Values and helpers every part may use: no I/O beyond a file helper, nothing of nutbridge above them.
    (
        "base",
        (
            "nutbridge",
            "nutbridge.errors",
            "nutbridge.model",
            "nutbridge.early_stop",  # the signal handler the process starts with
            "nutbridge.power",  # the power state (OL/OB/LB/CHRG/DISCHRG) and its rules
            "nutbridge.sunrise",  # the next sunrise from the PV starts of past days
            "nutbridge.outlook",  # the expected charge at that sunrise, per poll
            "nutbridge.files",
            "nutbridge.limits",
            "nutbridge.ratelimit",
            "nutbridge.redact",
            "nutbridge.tasks",  # a component's own TaskGroup (Background)
            "nutbridge.node",  # this node's identity (local.json), its time zone, a MAC's form
            "nutbridge.data.*",  # shipped files (a script for v1's pages), imported by nothing
        ),
    ),
    # NUT's table language (Var, the common rows, the walker that makes one poll's view) and its versions: below the
    # device families, whose folders each write their NUT table in it.
    ("nut mapping", ("nutbridge.nut.variables", "nutbridge.nut.version")),
    # One poll's immutable result, and the boundary every sink sits behind.
    ("snapshot", ("nutbridge.snapshot", "nutbridge.sinks")),
    # Views of a snapshot: its JSON (a reading by its own type's fields), which the API, pub/sub, MQTT and
    # /metrics show.
    ("views", ("nutbridge.snapshot_json",)),
    # How a configuration key is declared and checked: each family's [source] section is written with it.
    ("config keys", ("nutbridge.config_keys",)),
    # Device families, one folder each (devices/<family>/: source, model, NUT table, [source] section) and their
    # registry; the simulator is one too. TEST mode's loop wraps any source.
    ("devices", ("nutbridge.devices.*", "nutbridge.simulator.*", "nutbridge.testmode")),
    # The coordinator: one poll, one Snapshot, offered to every sink.
    ("monitor", ("nutbridge.monitor",)),
    # Sinks and stores that take snapshots and know no consumer: the port file (NUT's view), the data log (its
    # writer and the reader, the day cache, that the API, the v1 routes and the election read it through),
    # systemd's notifications, the -v printer; the simulator's history writes a data log.
    (
        "sinks",
        (
            "nutbridge.nut.*",  # portfile_text, portfile, seed, driver, upsconf; sock_wire, driver_state, driver_socket
            # and driver_commands (what upscmd and upsrw reach)
            "nutbridge.datalog.*",  # the data log: format, writer, reader (the day cache), retention, sunrise_scan
            "nutbridge.sdnotify",
            "nutbridge.printer",
            "nutbridge.simulator.history",
        ),
    ),
    # The configuration: every part's section, checked once. Above the device families (it checks a source's
    # URL with the family's own parser), below every consumer, which takes its section from it.
    (
        "config",
        (
            "nutbridge.config",
            "nutbridge.config_sections",
            "nutbridge.enphase_conf",
        ),
    ),
    # The solar peer network: the device list, the announcer, the election. It reads the data log (its reader)
    # and serves nothing itself: the server's routes use it, never the other way.
    ("peers", ("nutbridge.peers.*",)),
    # Consumers: the sidecar's routes and the feeds, each reading snapshots and the data log.
    ("consumers", ("nutbridge.server.*", "nutbridge.feeds.*")),
    # Wiring: the consumers, one list of sinks built from the configuration (consumers), and the daemon that starts
    # them with the source and the monitor under one TaskGroup.
    ("daemon", ("nutbridge.consumers", "nutbridge.daemon")),
    # The commands beside the daemon: each a tool of its own, none importing another's entry point.
    (
        "commands",
        (
            "nutbridge.system",  # what the commands share: the config's loader, NUT's user, systemctl
            "nutbridge.setup_cmd",
            "nutbridge.setup_steps",
            "nutbridge.setup_sections",  # an existing [UPS] beside the one setup would write
            "nutbridge.setup_texts",
            "nutbridge.doctor",
            "nutbridge.doctor.*",
            "nutbridge.status_cmd",
            "nutbridge.killpower_cmd",  # the power cycle by hand or from a shutdown hook
            "nutbridge.capture",
            "nutbridge.capture.*",  # take (the family's capture hook), bundle (redacted files, the archive)
            "nutbridge.migrate",
            "nutbridge.migrate.*",  # switch (forward), manifest, undo, run (each step asked, done, recorded)
            "nutbridge.v1node",
            "nutbridge.driver_cmd",  # nutbridge-driver: the daemon as one of NUT's drivers
            "nutbridge.driver_section",  # its ups.conf section, paths, driver.* variables and configuration
        ),
    ),
    # The entry point: flags, then the command or the daemon.
    ("cli", ("nutbridge.cli", "nutbridge.__main__")),
]

# Imports known to break the rule, each with the change that removes it. Nothing else may.
ALLOWED: dict[tuple[str, str], str] = {}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = modules()


def imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """The nutbridge modules ``name`` imports, with the line of each import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            # ``from pkg import module`` imports the module; ``from module import name`` the module itself
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]
        else:
            continue
        for imported in targets:
            target = imported
            while target and target not in MODULES:  # ``import nutbridge.x.y`` of an attribute: its module
                target = target.rpartition(".")[0]
            if target.startswith("nutbridge") and target != name:
                yield target, node.lineno


GRAPH: dict[str, dict[str, int]] = {}
for _name, _path in MODULES.items():
    GRAPH[_name] = {}
    for _target, _line in imports(_name, _path):
        GRAPH[_name].setdefault(_target, _line)


def layer_of(name: str) -> int:
    """The index of ``name``'s layer, by its longest matching pattern; KeyError when none matches."""
    best: tuple[int, int] | None = None
    for index, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            package = pattern.removesuffix(".*")
            inside = pattern.endswith(".*") and (name == package or name.startswith(package + "."))
            if (name == pattern or inside) and (best is None or len(pattern) > best[0]):
                best = (len(pattern), index)
    if best is None:
        raise KeyError(name)
    return best[1]


def test_every_module_has_a_layer() -> None:
    missing = []
    for name in MODULES:
        try:
            layer_of(name)
        except KeyError:
            missing.append(name)
    assert not missing, f"add these to a layer in LAYERS: {missing}"


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    upward = []
    for name, targets in GRAPH.items():
        for target, line in targets.items():
            if layer_of(target) > layer_of(name) and (name, target) not in ALLOWED:
                below, above = LAYERS[layer_of(name)][0], LAYERS[layer_of(target)][0]
                upward.append(
                    f"{MODULES[name].relative_to(PACKAGE.parent)}:{line}: {name} ({below}) imports {target} ({above})"
                )
    assert not upward, "\n".join(upward)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    graph = {name: {t for t in targets if (name, t) not in ALLOWED} for name, targets in GRAPH.items()}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_allowed_import_still_exists() -> None:
    """An allowance whose import is gone is dropped, so the list only shrinks."""
    stale = [pair for pair in ALLOWED if pair[1] not in GRAPH.get(pair[0], {})]
    assert not stale, f"remove from ALLOWED: {stale}"


# Exceptions nutbridge defines that must not descend from NutbridgeError, with why.
OUTSIDE_THE_TREE: dict[str, str] = {
    # A BaseException, like KeyboardInterrupt: it must pass every ``except Exception`` on its way out.
    "nutbridge.early_stop.EarlyStop": "SIGTERM before the loop runs: unwinds like KeyboardInterrupt",
}


def defined_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined in a nutbridge module, by ``module.qualname``."""
    found: dict[str, type[BaseException]] = {}
    for name in MODULES:
        if name.startswith("nutbridge.data.") or (name.endswith("__main__") and name != "nutbridge.__main__"):
            continue  # shipped scripts and the simulator's entry point run as programs
        module = importlib.import_module(name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == name:
                found[f"{name}.{value.__qualname__}"] = value
    return found


def test_every_exception_descends_from_nutbridge_error() -> None:
    outside = [name for name, cls in defined_exceptions().items() if not issubclass(cls, NutbridgeError)]
    assert sorted(outside) == sorted(OUTSIDE_THE_TREE)


def test_errors_py_draws_every_exception() -> None:
    doc = errors.__doc__ or ""
    missing = [name for name in defined_exceptions() if name not in OUTSIDE_THE_TREE and not drawn(name, doc)]
    assert not missing, f"draw these in errors.py's tree: {missing}"


def drawn(name: str, doc: str) -> bool:
    """Whether the tree names the class: by itself in errors.py, else with its module (``server/api.py Busy``)."""
    module, _, cls = name.rpartition(".")
    if module == "nutbridge.errors":
        return f" {cls} " in doc or f" {cls}\n" in doc
    path = module.removeprefix("nutbridge.").replace(".", "/") + ".py"
    return any(path in line and f" {cls}" in line for line in doc.splitlines())


@pytest.mark.parametrize("name", ["nutbridge.peers.entry.DeviceError", "nutbridge.errors.Refused"])
def test_the_tree_check_knows_a_class_by_its_module(name: str) -> None:
    assert drawn(name, errors.__doc__ or "")
    assert not drawn(name, "")


# Tasks started outside a TaskGroup, each with why. Everything else long-lived runs in the daemon's TaskGroup or
# in a component's own (nutbridge.tasks.Background).
BARE_TASKS: dict[str, str] = {
    # A worker thread's future, not a long-lived task: it must outlive a cancelled caller so the slot it holds is
    # freed when the thread ends (a TaskGroup would cancel the wait, not the thread).
    "nutbridge/server/api.py": "Turns.run: asyncio.ensure_future(asyncio.to_thread(job)), shielded",
}


def bare_tasks() -> dict[str, list[int]]:
    """Modules calling ``asyncio.create_task``/``ensure_future`` or a loop's ``create_task``, with the lines."""
    found: dict[str, list[int]] = {}
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("create_task", "ensure_future"):
                bare = True
            elif isinstance(func, ast.Attribute) and func.attr in ("create_task", "ensure_future"):
                receiver = ast.unparse(func.value)
                bare = receiver == "asyncio" or receiver.endswith(("loop", "loop()"))
            else:
                bare = False
            if bare:
                found.setdefault(str(path.relative_to(PACKAGE.parent)), []).append(node.lineno)
    return found


def test_long_lived_tasks_run_in_a_task_group() -> None:
    assert sorted(bare_tasks()) == sorted(BARE_TASKS)


def test_the_task_check_sees_a_bare_task() -> None:
    assert "nutbridge/server/api.py" in bare_tasks()
