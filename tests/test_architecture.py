"""The shape of the code: imports point one way, and the library stands on its own.

Read from the source with :mod:`ast`, so imports inside functions count as much as those at the
top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("smallstack", "explorer", "project")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each first-party module -> the first-party modules it imports (anywhere in its code)."""
    modules = {
        _module_name(path): path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for target in targets:
                # The longest first-party module the name refers to (a module, or its package).
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.add(target)
        graph[name] = found
    return graph


def test_no_two_modules_import_each_other():
    graph = _imports()
    mutual = sorted(
        (a, b) for a, targets in graph.items() for b in targets if a < b and a in graph.get(b, ())
    )
    assert not mutual, f"modules importing each other: {mutual}"


def test_the_library_never_imports_the_demo_project():
    graph = _imports()
    leaks = {
        name: sorted(t for t in targets if t.split(".")[0] == "project")
        for name, targets in graph.items()
        if name.split(".")[0] in {"smallstack", "explorer"}
    }
    assert not {name: found for name, found in leaks.items() if found}


def test_the_graph_is_read_from_real_imports():
    graph = _imports()
    # Spot checks that the reader sees module-level and in-function imports.
    assert "smallstack.contract" in graph["smallstack.engine"]
    assert "smallstack.registry" in graph["smallstack.contract"]
    assert "smallstack.dashboard" in graph["smallstack.apps"]  # inside ready()
