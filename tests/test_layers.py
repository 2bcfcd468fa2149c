"""The layers of docs/architecture.md, checked from the source: who may import what, and no cycles.

Imports are read with ``ast`` (nothing is executed), at module level and inside
functions alike; only those under ``if TYPE_CHECKING:`` are left out, since
they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import nbchat

pytestmark = pytest.mark.unit

PACKAGE = Path(nbchat.__file__).parent

SHELLS = (
    "nbchat.__main__",
    "nbchat.client",
    "nbchat.notebook",
    "nbchat.server",
    "nbchat.cli",
    "nbchat.testing",
    "nbchat.tools",
)
"""The I/O layers, each a folder; everything else in the package is the pure core."""

IO_LIBRARIES = ("asyncio", "websockets", "ipywidgets", "anywidget", "IPython", "traitlets")
WIDGET_LIBRARIES = ("ipywidgets", "anywidget")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _imports(path: Path) -> set[str]:
    """The absolute names of what one module imports (``from . import x`` resolved)."""
    name = _module_name(path)
    package = name if _is_package(path) else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # ``from .. import render``: the name may itself be a module
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if _path_of(candidate) is not None:
                    found.add(candidate)
    return found


def _path_of(module: str) -> Path | None:
    if not module.startswith("nbchat"):
        return None
    relative = Path(*module.split(".")[1:])
    for path in (PACKAGE / relative.with_suffix(".py"), PACKAGE / relative / "__init__.py"):
        if path.exists():
            return path
    return None


GRAPH = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _in(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _core() -> list[str]:
    return [m for m in GRAPH if m != "nbchat" and not _in(m, *SHELLS)]


def test_the_core_does_no_io() -> None:
    """The pure core imports no asyncio, websockets, widgets or IPython."""
    offenders = {m: sorted(i for i in GRAPH[m] if _in(i, *IO_LIBRARIES)) for m in _core()}
    assert {m: i for m, i in offenders.items() if i} == {}


def test_the_core_imports_no_shell() -> None:
    """The core never reaches up into the client, notebook, server, CLI or testing layers."""
    offenders = {m: sorted(i for i in GRAPH[m] if _in(i, *SHELLS)) for m in _core()}
    assert {m: i for m, i in offenders.items() if i} == {}


def test_only_the_notebook_layer_imports_widgets() -> None:
    """ipywidgets and anywidget are imported under ``nbchat.notebook`` and nowhere else."""
    offenders = {
        m: sorted(i for i in imports if _in(i, *WIDGET_LIBRARIES))
        for m, imports in GRAPH.items()
        if not _in(m, "nbchat.notebook")
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_the_server_imports_nothing_from_the_notebook_or_client() -> None:
    """The server is usable without the notebook layer or the client shell."""
    offenders = {
        m: sorted(i for i in imports if _in(i, "nbchat.notebook", "nbchat.client", "nbchat.cli"))
        for m, imports in GRAPH.items()
        if _in(m, "nbchat.server")
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_the_client_imports_nothing_from_the_notebook_server_or_cli() -> None:
    """The client shell sits below the notebook, the CLI and (as a peer) the server."""
    offenders = {
        m: sorted(i for i in imports if _in(i, "nbchat.notebook", "nbchat.server", "nbchat.cli"))
        for m, imports in GRAPH.items()
        if _in(m, "nbchat.client")
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_the_tool_runner_imports_no_other_shell() -> None:
    """``nbchat.tools`` serves the client and the server alike, so it may import neither."""
    offenders = {
        m: sorted(i for i in imports if _in(i, *SHELLS) and not _in(i, "nbchat.tools"))
        for m, imports in GRAPH.items()
        if _in(m, "nbchat.tools")
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_no_import_cycles() -> None:
    """No module reaches itself through what it imports (package ``__init__`` re-exports aside)."""
    edges = {
        m: {i for i in imports if i in GRAPH and i != m and not m.startswith(i + ".")}
        for m, imports in GRAPH.items()
        if m != "nbchat"
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_no_module_is_over_about_400_lines() -> None:
    """One concept per module: none grows past 450 lines."""
    long = {
        _module_name(p): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450
    }
    assert long == {}
