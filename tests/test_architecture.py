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
    assert "smallstack.dashboard" in graph["smallstack.heartbeat.apps"]  # inside ready()


#: What a first-party feature app (``smallstack/<feature>/``) may import from the dashboard: the
#: public contract a user's own app would use, nothing of the engine's insides.
PUBLIC_CONTRACT = frozenset(
    {
        "smallstack",
        "smallstack.access",
        "smallstack.conf",
        "smallstack.contract",
        "smallstack.dashboard",
        "smallstack.displays",
    }
)


def feature_apps(root: Path = ROOT) -> list[Path]:
    """The folders under ``smallstack/`` that are Django apps of their own (an ``apps.py``)."""
    return sorted(path.parent for path in (root / "smallstack").glob("*/apps.py"))


def private_imports(graph: dict[str, set[str]], feature: str) -> dict[str, list[str]]:
    """Modules of ``feature`` importing dashboard modules outside :data:`PUBLIC_CONTRACT`."""
    found = {}
    for name, targets in graph.items():
        if name == feature or name.startswith(f"{feature}."):
            private = sorted(
                t
                for t in targets
                if t.split(".")[0] == "smallstack"
                and t not in PUBLIC_CONTRACT
                and not (t == feature or t.startswith(f"{feature}."))
            )
            if private:
                found[name] = private
    return found


def test_first_party_feature_apps_use_only_the_public_contract():
    graph = _imports()
    for folder in feature_apps():
        feature = ".".join(folder.relative_to(ROOT).parts)
        assert not private_imports(graph, feature), feature


def test_the_feature_rule_catches_a_private_import():
    graph = {
        "smallstack.heartbeat.widgets": {"smallstack.dashboard", "smallstack.heartbeat.models"},
        "smallstack.heartbeat.views": {"smallstack.engine", "smallstack.contract"},
        "smallstack.engine": {"smallstack.contract"},
    }
    assert private_imports(graph, "smallstack.heartbeat") == {
        "smallstack.heartbeat.views": ["smallstack.engine"]
    }
