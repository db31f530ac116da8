"""The package's layers, checked from its source: every import of ``gnnagg/`` (module level,
inside functions and under ``TYPE_CHECKING``) is parsed, and the test fails on an import cycle,
an import upward in the documented layer order, a private module imported from another
subpackage, or anything importing ``experiments``.

The order (``gnnagg/__init__.py`` documents it), bottom to top: ``_checks``/``_files``/
``_torchscript``, then ``segment``, ``monoids``, ``aggr``; ``poly``, ``attention`` and ``data``
beside them (they use
``segment`` and the root helpers only); ``models`` above ``attention``; ``bench`` on top, inside
which the order of ``gnnagg/bench/__init__.py`` holds and no study imports another.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gnnagg"

# Subpackage -> the subpackages (and root modules) it may import.
ALLOWED: dict[str, set[str]] = {
    "_checks": set(),
    "_files": set(),
    "_torchscript": set(),
    "segment": {"_checks", "_files", "_torchscript"},
    "monoids": {"segment", "_checks", "_files", "_torchscript"},
    "aggr": {"monoids", "segment", "_checks", "_files", "_torchscript"},
    "poly": {"segment", "_checks", "_files", "_torchscript"},
    "attention": {"segment", "_checks", "_files", "_torchscript"},
    "data": {"segment", "_checks", "_files", "_torchscript"},
    "models": {
        "attention", "aggr", "monoids", "segment", "poly", "data", "_checks", "_files",
        "_torchscript",
    },
    "bench": {
        "models", "attention", "aggr", "monoids", "segment", "poly", "data", "_checks", "_files",
        "_torchscript",
    },
}  # fmt: skip
# Inside gnnagg.bench, bottom to top: a module may import those of its own level and below.
BENCH_LEVELS: list[set[str]] = [
    {"validation", "machine", "measure", "stats", "jobs", "checkpoints"},
    {"training", "registry", "datasets"},
    {"fields", "section"},
    {"studies"},
    {"config"},
    {"results"},
    {"report"},
    {"runner"},
    {"cli"},
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, name: str) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import in the file, wherever it sits."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # The importing module's own packages are already imported: no edge to them.
            if not (name == target or name.startswith(target + ".")):
                found.append((target, node.lineno))
            # "from pkg import submodule" imports the submodule too.
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
    return found


def _graph() -> tuple[dict[str, Path], dict[str, list[tuple[str, int]]]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        edges[name] = [
            (target, line)
            for target, line in _imports(path, name)
            if target in modules and target != name or target.split(".")[0] == "experiments"
        ]
    return modules, edges


MODULES, EDGES = _graph()


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _bench_level(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 3 or parts[1] != "bench":
        return None
    for level, names in enumerate(BENCH_LEVELS):
        if parts[2] in names:
            return level
    raise AssertionError(f"{module}: not placed in BENCH_LEVELS (tests/test_layers.py)")


def test_the_layer_tables_name_every_subpackage():
    subpackages = {_subpackage(m) for m in MODULES} - {""}
    assert subpackages == set(ALLOWED), "add the new subpackage to ALLOWED"


def test_no_import_cycles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target, _ in EDGES[node]:
            if target not in EDGES:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(EDGES):
        if module not in index:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_upward_or_private_imports():
    problems = []
    for module, targets in EDGES.items():
        source = _subpackage(module)
        for target, line in targets:
            where = f"{MODULES[module].relative_to(ROOT)}:{line}: {module} -> {target}"
            if target.split(".")[0] == "experiments":
                problems.append(f"{where} (gnnagg never imports experiments/)")
                continue
            sink = _subpackage(target)
            if source in ("", sink) or sink == "":
                pass
            elif sink not in ALLOWED[source]:
                problems.append(f"{where} (upward: {source} may import {sorted(ALLOWED[source])})")
            private = [p for p in target.split(".")[2:] if p.startswith("_") and p != "__init__"]
            if private and source != sink:
                problems.append(f"{where} (a private module of another subpackage)")
            low, high = _bench_level(module), _bench_level(target)
            if low is not None and high is not None and high > low:
                problems.append(f"{where} (upward inside gnnagg.bench)")
            if low == high == BENCH_LEVELS.index({"studies"}):
                mine, theirs = module.split(".")[3:4], target.split(".")[3:4]
                if mine and theirs and mine != theirs:
                    problems.append(f"{where} (one study imports another)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("folder", ["gnnagg", "tests"])
def test_nothing_imports_experiments(folder):
    offenders = []
    for path in (ROOT / folder).rglob("*.py"):
        for target, line in _imports(path, _module_name(path)):
            if target.split(".")[0] == "experiments":
                offenders.append(f"{path.relative_to(ROOT)}:{line}")
    assert not offenders, "experiments/ holds scripts only: " + ", ".join(offenders)


def test_no_file_of_the_package_passes_600_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert not long, f"split these by concern: {long}"
