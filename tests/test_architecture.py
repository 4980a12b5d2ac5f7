"""The layout of docs/architecture.md, enforced: imports point down the stack, never up or in a circle.

Every import counts, the lazy ones inside functions too (they are how a command keeps start-up
fast, not a way around the layering).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bottom to top; a package may import its own layer's modules and any layer below it
LAYERS = [
    {"edge", "edge.errors", "edge.util"},
    {"edge.ops", "edge.data", "edge.backends"},
    {"edge.results"},
    {"edge.model"},
    {"edge.sources", "edge.archive"},
    {"edge.outputs"},
    {"edge.run"},
    {"edge.bench", "edge.device"},
    {"edge.commands", "edge.cli", "edge.__main__"},
]


def _layer(module: str) -> int:
    best = None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (i, name)
    assert best is not None, f"{module} belongs to no layer of docs/architecture.md"
    return best[0]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if (ROOT / f"{node.module}.{a.name}".replace(".", "/")).with_suffix(".py").exists()
                         or (ROOT / f"{node.module}.{a.name}".replace(".", "/")).is_dir())
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.split(".")[0] in ("edge", "train")}


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def test_the_device_side_never_imports_train_or_tensorflow():
    for name, path in _modules("edge").items():
        bad = {m for m in _imports(path) if m.split(".")[0] == "train"}
        assert not bad, f"{name} imports {bad}"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        heavy = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
                 if a.name.split(".")[0] in ("tensorflow", "keras")]
        heavy += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                  and n.module.split(".")[0] in ("tensorflow", "keras")]
        assert not heavy, f"{name} imports {heavy}"


def test_edge_imports_point_down_the_stack():
    for name, path in _modules("edge").items():
        mine = _layer(name)
        for dep in _imports(path):
            assert _layer(dep) <= mine, f"{name} (layer {mine}) imports {dep} (layer {_layer(dep)}): upward"


def test_no_import_circles():
    """No two modules import each other, and edge's sub-packages (edge.X) form no circle."""
    graph = {name: _imports(path) for pkg in ("edge", "train") for name, path in _modules(pkg).items()}
    for name, deps in graph.items():
        for dep in deps:
            assert name not in graph.get(dep, set()), f"{name} and {dep} import each other"

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    edges: dict[str, set[str]] = {}
    for name, deps in graph.items():
        for dep in deps:
            a, b = package(name), package(dep)
            if a != b and a.startswith("edge.") and b.startswith("edge."):
                edges.setdefault(a, set()).add(b)

    def on_a_circle(start: str) -> bool:
        seen, todo = set(), list(edges.get(start, ()))
        while todo:
            nxt = todo.pop()
            if nxt == start:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.extend(edges.get(nxt, ()))
        return False

    circles = [pkg for pkg in edges if on_a_circle(pkg)]
    assert not circles, f"edge's sub-packages import each other in a circle through {circles}"


def test_no_module_is_too_long_to_read_in_one_sitting():
    for pkg in ("edge", "train"):
        for name, path in _modules(pkg).items():
            lines = len(path.read_text(encoding="utf-8").splitlines())
            assert lines <= 425, f"{name} has {lines} lines"
