"""The package's rooms: each folder has one role, and a lower room never imports a higher one.

Every import counts, also those inside functions and under ``TYPE_CHECKING``: a
type-only import still ties two modules together for a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bridge

PACKAGE = Path(bridge.__file__).parent

# Lowest first. A module may import its own room and any room below it.
ROOMS: list[tuple[str, set[str]]] = [
    ("foundation", {"bridge.errors", "bridge.settings", "bridge.job", "bridge.core"}),
    ("worker", {"bridge.worker"}),
    ("backends", {"bridge.redis", "bridge.sqs", "bridge.embedded", "bridge.broker", "bridge.dynamodb"}),
    ("api", {"bridge", "bridge.bridge", "bridge.queue", "bridge.jobs", "bridge.lock", "bridge.idempotent",
             "bridge.stats", "bridge.celeryconfig"}),
    ("cli", {"bridge.cli"}),
]  # fmt: skip
PUBLIC_TOP_LEVEL = {
    "__init__", "bridge", "queue", "jobs", "lock", "idempotent", "stats", "errors", "settings", "job",
    "celeryconfig",
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, name: str) -> set[str]:
    """The bridge modules ``path`` imports, anywhere in it."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    known = modules()
    return {imported for imported in found if imported in known and imported != name}


def room_of(name: str) -> int:
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(ROOMS):
        for prefix in prefixes:
            exact = prefix == "bridge" and name == "bridge"
            if (exact or name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    if rank < 0:
        raise AssertionError(f"{name} is in no room: add its folder to ROOMS and to the README's Layout")
    return rank


def test_top_level_holds_only_the_public_api() -> None:
    top = {path.stem for path in PACKAGE.glob("*.py")}
    assert top == PUBLIC_TOP_LEVEL


def test_every_folder_is_a_room_and_a_package() -> None:
    folders = [path for path in PACKAGE.iterdir() if path.is_dir() and path.name != "__pycache__"]
    rooms = set().union(*(prefixes for _, prefixes in ROOMS))
    assert {f"bridge.{path.name}" for path in folders} <= rooms
    # A folder without __init__.py is a namespace package, which setuptools leaves out of the wheel.
    assert [path.name for path in folders if not (path / "__init__.py").exists()] == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_imports_a_higher_room(name: str) -> None:
    path = modules()[name]
    higher = {imported for imported in imports_of(path, name) if room_of(imported) > room_of(name)}
    assert not higher, f"{name} ({ROOMS[room_of(name)][0]}) imports a higher room: {sorted(higher)}"


def test_there_are_no_import_circles() -> None:
    graph = {name: imports_of(path, name) for name, path in modules().items()}
    # `bridge` (the package) re-exports its public modules: edges out of it are not circles.
    graph["bridge"] = set()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circle = [*stack[stack.index(nxt) :], nxt]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_checker_sees_type_only_and_function_level_imports(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from bridge.bridge import Bridge\n"
        "def f():\n    from bridge.cli.main import main\n"
    )
    assert imports_of(source, "bridge.core.probe") == {"bridge.bridge", "bridge.cli.main"}
