"""The package's import structure (docs/architecture.md: "imports point one way"), checked from the source:
no import cycle between modules, counting imports inside functions too; `rlvr.verify` imports nothing
else of rlvr; no module uses another package's private (underscore) names; `rlvr.rl` and `rlvr.schema`
stay leaves."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "rlvr"


def _modules() -> dict[str, Path]:
    mods = {}
    for f in sorted(ROOT.rglob("*.py")):
        parts = f.relative_to(ROOT.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return mods


MODULES = _modules()


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, imported names, line) for every `rlvr` import anywhere in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "rlvr":
            out.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "rlvr"]
    return out


def _targets(module: str, names: list[str]) -> list[str]:
    """The modules an import loads: `from rlvr.eval import spec` is rlvr.eval.spec."""
    return [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES] or [module]


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for m, path in MODULES.items():
        for module, names, _ in _imports(path):
            graph[m] |= {t for t in _targets(module, names) if t in MODULES and t != m}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, edges = work[-1]
            for w in edges:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_leaves_import_nothing_above_them():
    graph = _graph()
    allowed = {"verify": {"verify"}, "rl": {"rl"}, "schema": set()}
    bad = []
    for m, deps in graph.items():
        pkg = _package(m)
        if pkg in allowed:
            bad += [f"{m} -> {d}" for d in deps if _package(d) not in allowed[pkg] | {pkg}]
    assert bad == []


def test_no_private_names_across_packages():
    bad = []
    for m, path in MODULES.items():
        for module, names, line in _imports(path):
            if _package(module) == _package(m):
                continue
            private = [n for n in names + module.split(".") if n.startswith("_") and not n.endswith("__")]
            bad += [f"{path.relative_to(ROOT.parent)}:{line}: {module}.{n}" for n in private]
    assert bad == []


def test_no_import_late_workarounds():
    # the comment that excused a cycle: "rlvr.eval imports this module: import late"
    bad = [f"{p.relative_to(ROOT.parent)}" for p in MODULES.values() if re.search(r"#.*import late\b", p.read_text())]
    assert bad == []
