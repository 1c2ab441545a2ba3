"""The layers of the project, read from the source with ``ast`` (imports inside functions
included), so that a new upward import or a new cycle fails here.

A module imports only from its own layer or the layers below it::

    5  pipeline / CLI / public API   bestie_labels.pipeline, bestie_cli (folder cli/), bestie_labels (root, api)
    4  stages / trainer              bestie_labels.stages, bestie_train
    3  algorithms / formats          bestie_labels.algorithms, .formats, .evaluation, .backbones, .classifier,
                                     .irn, .viz
    2  datasets                      bestie_labels.datasets
    1  store                         bestie_labels.store
    0  core                          bestie_labels.core

and besides: the trainer (``bestie_train``) never imports the label stages (it reads stores
through ``bestie_labels.store``), the label library never imports the trainer, and no two
modules import each other, directly or through others.

Imports under ``if TYPE_CHECKING:`` never run: they name types in annotations only, and are not
counted (``store`` names the datasets' ``Record`` / ``Dataset`` that way).

``python tests/test_layers.py`` prints the import graph by package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Installed package name -> its folder (``cli/`` is installed as ``bestie_cli``).
PACKAGES = {"bestie_labels": "bestie_labels", "bestie_train": "bestie_train", "bestie_cli": "cli"}

#: The layer of each package (a module belongs to the longest entry its name starts with).
LAYERS = {
    "bestie_labels.core": 0,
    "bestie_labels.store": 1,
    "bestie_labels.datasets": 2,
    "bestie_labels.algorithms": 3, "bestie_labels.formats": 3, "bestie_labels.evaluation": 3,
    "bestie_labels.backbones": 3, "bestie_labels.classifier": 3, "bestie_labels.irn": 3,
    "bestie_labels.viz": 3,  # drawing (palette, layers, panels) and the HTML reports
    "bestie_labels.stages": 4, "bestie_train": 4,
    "bestie_labels.pipeline": 5, "bestie_cli": 5,
    "bestie_labels": 5,  # the package root (public API): it imports the layers below
}
#: Imports forbidden even where the layers allow them: ``{importer: imported}``.
FORBIDDEN = {"bestie_train": ("bestie_labels.stages",), "bestie_labels": ("bestie_train",)}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = [next(k for k, v in PACKAGES.items() if v == rel.parts[0]), *rel.with_suffix("").parts[1:]]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for folder in PACKAGES.values() for p in sorted((ROOT / folder).rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    t = node.test if isinstance(node, ast.If) else None
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every import statement of a module, at any depth, except under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if _is_type_checking(node):
            yield from (n for child in node.orelse for n in _imports(ast.Module([child], [])))
            continue
        yield from _imports(node)


def _targets(node: ast.Import | ast.ImportFrom, here: str, is_package: bool, known: set[str]) -> list[str]:
    """The project modules one import statement names (``from a import b``: ``a.b`` when that
    is a module, else ``a``)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = here.split(".") if is_package else here.split(".")[:-1]
            pkg = pkg[:len(pkg) - node.level + 1]
            base = ".".join(pkg + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
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
        graph[name] = {t for node in _imports(tree) for t in _targets(node, name, is_pkg, known) if t != name}
    return graph


def package_of(module: str) -> str | None:
    """The :data:`LAYERS` entry a module belongs to (the longest prefix), or None."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in LAYERS:
            return ".".join(parts[:i])
    return None


def bad_arrows(graph: dict[str, set[str]]) -> list[str]:
    """Every import that points to a higher layer, or that :data:`FORBIDDEN` forbids."""
    bad = []
    for m, targets in sorted(graph.items()):
        for t in sorted(targets):
            if LAYERS[package_of(t)] > LAYERS[package_of(m)]:
                bad.append(f"{m} (layer {LAYERS[package_of(m)]}) -> {t} (layer {LAYERS[package_of(t)]})")
            for importer, imported in FORBIDDEN.items():
                if _within(m, importer) and any(_within(t, f) for f in imported):
                    bad.append(f"{m} -> {t} (forbidden: {importer} never imports {', '.join(imported)})")
    return bad


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


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


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """``{package: the other packages it imports}`` (packages as in :data:`LAYERS`)."""
    out: dict[str, set[str]] = {p: set() for p in LAYERS}
    for m, targets in graph.items():
        out[package_of(m)] |= {package_of(t) for t in targets} - {package_of(m)}
    return out


def test_every_module_has_a_layer():
    missing = sorted(m for m in import_graph() if package_of(m) is None)
    assert not missing, "modules in no layer (add their package to LAYERS): " + ", ".join(missing)


def test_no_upward_import():
    bad = bad_arrows(import_graph())
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_the_root_of_bestie_labels_holds_few_modules():
    root = sorted(p.name for p in (ROOT / "bestie_labels").glob("*.py"))
    assert len(root) <= 8, root


def test_every_package_is_installed():
    """A package folder missing from pyproject's explicit list would be left out of the wheel."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {_module_name(p.parent / "__init__.py") for f in PACKAGES.values()
               for p in (ROOT / f).rglob("__init__.py")}
    assert set(conf["packages"]) == folders
    assert conf["package-dir"] == {k: v for k, v in PACKAGES.items() if k != v}


def test_the_checks_can_fail():
    """The reader and the rules themselves, on small graphs: a relative import inside a function
    counts, a TYPE_CHECKING import does not, an upward or forbidden arrow and a cycle are found."""
    graph = import_graph()
    assert "bestie_labels.store.inputs" in graph["bestie_train.run_state"]  # imported in a function
    assert "bestie_labels.store.inputs" in graph["bestie_labels.stages.transfer"]  # `from ..store.inputs`
    assert "bestie_labels.datasets.base" not in graph["bestie_labels.store.checks"]  # under TYPE_CHECKING
    assert "bestie_labels.core.errors" in graph["bestie_labels.store.checks"]
    assert bad_arrows({"bestie_labels.store.file": {"bestie_labels.datasets.base"}}) == [
        "bestie_labels.store.file (layer 1) -> bestie_labels.datasets.base (layer 2)"]
    assert bad_arrows({"bestie_train.data": {"bestie_labels.stages.engine"}})
    assert bad_arrows({"bestie_labels.algorithms.matching": {"bestie_train.targets"}})
    assert bad_arrows({"bestie_labels.core.errors": {"bestie_labels"}})  # the root is the top layer
    assert not bad_arrows({"bestie_labels.stages.engine": {"bestie_labels.store.file", "bestie_labels.stages.cues"}})
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []
    src = "import typing\nif typing.TYPE_CHECKING:\n    import a\nelse:\n    import b\ndef f():\n    if TYPE_CHECKING:\n        import c\n    import d\n"
    assert [n.names[0].name for n in _imports(ast.parse(src))] == ["typing", "b", "d"]


if __name__ == "__main__":
    g = import_graph()
    pg = package_graph(g)
    for p in sorted(pg, key=lambda p: (-LAYERS[p], p)):
        print(f"{LAYERS[p]}  {p:26} -> {', '.join(sorted(pg[p], key=lambda q: (-LAYERS[q], q))) or '-'}")
    print(f"{len(g)} modules, {sum(map(len, g.values()))} imports; cycle: {find_cycle(g) or 'none'}; "
          f"upward: {len(bad_arrows(g))}")
