"""The import graph of the project's own modules, read from the source with ``ast`` (imports
inside functions included), so that a new cycle or a new upward import fails here:

* no import cycle between modules;
* the trainer (``bestie_train``) never imports the label stages (``bestie_labels.stages``) or
  the command line (``cli``): it reads stores through ``bestie_labels.store.inputs``;
* the label library (``bestie_labels``) never imports the trainer or the command line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bestie_labels", "bestie_train", "cli")  # cli/ is installed as bestie_cli


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _targets(node: ast.AST, here: str, is_package: bool, known: set[str]) -> list[str]:
    """The project modules one import statement names (``from a import b``: ``a.b`` when that
    is a module, else ``a``)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            pkg = here.split(".") if is_package else here.split(".")[:-1]
            pkg = pkg[:len(pkg) - node.level + 1]
            base = ".".join(pkg + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    else:
        return []
    out = []
    for n in names:
        while n and n not in known:  # `import a.b.c` of a name inside a module: its module
            n = n.rpartition(".")[0]
        if n:
            out.append(n)
    return out


def import_graph() -> dict[str, set[str]]:
    """``{module: the project modules it imports}`` over every ``.py`` of the packages."""
    mods = _modules()
    known = set(mods)
    graph = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        is_pkg = path.name == "__init__.py"
        graph[name] = {t for node in ast.walk(tree) for t in _targets(node, name, is_pkg, known) if t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as ``[a, b, ..., a]``, or ``[]``."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(m: str) -> list[str]:
        state[m] = 1
        path.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                return path[path.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        path.pop()
        state[m] = 2
        return []

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return []


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("layer,forbidden", [("bestie_train", ("bestie_labels.stages", "cli")),
                                             ("bestie_labels", ("bestie_train", "cli"))])
def test_no_upward_import(layer, forbidden):
    bad = sorted(f"{m} -> {t}" for m, ts in import_graph().items() if m.split(".")[0] == layer
                 for t in ts if any(t == f or t.startswith(f + ".") for f in forbidden))
    assert not bad, "upward imports: " + "; ".join(bad)


def test_the_graph_reader_sees_relative_imports_in_functions_and_cycles():
    """The reader itself: a relative import inside a function counts, and a cycle is found."""
    graph = import_graph()
    assert "bestie_labels.store.inputs" in graph["bestie_train.run_state"]  # imported in a function
    assert "bestie_labels.store.inputs" in graph["bestie_labels.stages.transfer"]  # `from ..store_inputs`
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []
