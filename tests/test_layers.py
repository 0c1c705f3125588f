"""The package layers (docs/architecture.md): no module imports a package above its own, and no
modules import each other in a circle.

Imports are read from the source (ast), so an import inside a function counts as much as one at the
top of a file; an import under ``if TYPE_CHECKING:`` counts for the layers (it is still a dependency
on that package) but not for cycles (it never runs).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import llmloop

ROOT = Path(llmloop.__file__).parent

# Lowest first; a package may import its own layer's packages and those below it.
LAYERS: list[set[str]] = [
    {"errors", "workspace", "fsutil", "resources"},
    {"store"},
    {"data"},
    {"inference"},
    {"train", "eval", "models"},
    {"loop"},
    {"serve", "api"},
    {"app", "ui", "demo"},
    {"cli"},
    {"__main__", "__init__"},
]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = ["llmloop", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name if name and name != "llmloop" else None


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports() -> list[tuple[str, str, int, bool]]:
    """(importer, imported, line, type_checking_only) for every llmloop import."""
    out = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        typing_only = _type_checking_lines(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                names = [f"{base}.{a.name}" for a in node.names] + [base]
            else:
                continue
            targets = {t for t in (_resolve(n) for n in names if n.startswith("llmloop")) if t and t != module}
            out += [(module, t, node.lineno, node.lineno in typing_only) for t in targets]
    return out


def test_every_package_has_a_layer():
    assert {_package(m) for m in MODULES} <= set(LEVEL), "add the new package to LAYERS and docs/architecture.md"


def test_no_package_imports_one_above_it():
    upward = sorted(f"{MODULES[a].relative_to(ROOT.parent)}:{line} imports {b} "
                    f"({_package(a)} is below {_package(b)})"
                    for a, b, line, _ in _imports()
                    if LEVEL[_package(b)] > LEVEL[_package(a)])
    assert not upward, "upward imports:\n" + "\n".join(upward)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_no_import_cycles():
    edges: dict[str, set[str]] = defaultdict(set)
    for module in MODULES:
        edges[module]
    for a, b, _, typing_only in _imports():
        if not typing_only:
            edges[a].add(b)
    cycles = _cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checks_see_real_imports():
    """The reader finds function-level and relative imports (else the tests above pass on nothing)."""
    found = {(a, b) for a, b, _, _ in _imports()}
    assert ("llmloop.app", "llmloop.api") in found  # inside a function
    assert ("llmloop.app", "llmloop.serve.gateway") in found  # at the top
    assert len(found) > 300
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
