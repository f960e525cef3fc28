"""The import graph of the project has no cycle, function-level imports included.

The interfaces (`Explainer`, `Metric`, `Engine`, `ModelAdapter`) sit below the registry;
the verbs (`explain`, `evaluate`, `explain_dataset`) sit above it and hand themselves
down where an interface needs to run a method (`MetricContext.reexplain`,
`DatasetJob.explain_batch`). Imports under `if TYPE_CHECKING:` never run and are left
out; so is the package's front door, whose names load lazily by string (PEP 562).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "xai_core": "xai_core",
    "xai_core_backends": "backends",
    "xai_core_explainers": "explainers",
    "xai_core_metrics": "metrics",
    "xai_core_engines": "engines",
}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports, anywhere in its body."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:  # `from . import hookspecs` imports that module
                child = f"{module}.{alias.name}"
                found.add(child if child in known else module)
        for child_node in ast.iter_child_nodes(node):
            visit(child_node)

    visit(tree)
    return {m for m in found if m in known and m != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = walk(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = walk(start)
            if cycle:
                return cycle
    return None


def test_the_import_graph_has_no_cycle():
    found = modules()
    known = set(found) - {"xai_core"}  # the front door loads its names by string
    graph = {n: imports_of(n, p, known) for n, p in found.items() if n in known}
    assert len(graph) > 60 and graph["xai_core.api"]  # the walk sees the project
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_walk_finds_a_cycle_when_there_is_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    src = ROOT / "xai_core" / "metric.py"
    assert "xai_core.batching" in imports_of("xai_core.metric", src, set(modules()))
