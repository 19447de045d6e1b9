"""The import direction of src/tricorn (docs/architecture.md): proto knows nothing of the layers above it,
interfaces know no protocol shell, io knows no supervisor, and module-level imports form no circle.

Imports under ``if TYPE_CHECKING:`` and inside functions are left out: they do not run at import time
(the function-level ones are the in-band protocol switches, see io/h1.py)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "tricorn"

# A module of the first layer may not import from any of the second ones.
FORBIDDEN = {
    "tricorn.proto": (
        "tricorn.io",
        "tricorn.interfaces",
        "tricorn.supervisor",
        "tricorn.serving",
        "tricorn.api",
        "tricorn.cli",
        "asyncio",
    ),
    "tricorn.interfaces": (
        "tricorn.io",
        "tricorn.supervisor",
        "tricorn.serving",
        "tricorn.api",
        "tricorn.cli",
    ),
    "tricorn.io": ("tricorn.supervisor", "tricorn.serving", "tricorn.api", "tricorn.cli"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def runtime_imports(path: Path) -> set[str]:
    """Modules imported when ``path`` is imported (top level, not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1]
                        + ([base] if base else [])
                    )
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)

    visit(tree.body)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    return {
        name: {m for m in runtime_imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }


def test_layers_import_downwards_only() -> None:
    problems = []
    for path in SRC.rglob("*.py"):
        name = module_name(path)
        for layer, banned in FORBIDDEN.items():
            if name == layer or name.startswith(layer + "."):
                for imported in runtime_imports(path):
                    if any(imported == b or imported.startswith(b + ".") for b in banned):
                        problems.append(f"{name} imports {imported}")
    assert problems == []


def test_no_import_circles() -> None:
    edges = graph()
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(edges[node]):
            if seen.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in seen:
                walk(nxt, [*path, nxt])
        seen[node] = 2

    for start in sorted(edges):
        if start not in seen:
            walk(start, [start])
    assert cycles == []


def test_the_walk_sees_real_edges() -> None:
    """The walk must find the imports it is meant to hold (else the tests above could not fail)."""
    edges = graph()
    assert "tricorn.proto.h1" in edges["tricorn.io.h1"]
    assert "tricorn.interfaces.stream" in edges["tricorn.interfaces.asgi"]
    assert "tricorn.io.tlsconn" in edges["tricorn.io.accept"]
    assert "tricorn.io.tls" in edges["tricorn.io.tlsconn"]
