"""No module of the project imports, directly or through others, a module that imports it back.

Imports inside functions count too: deferring an import hides a cycle from Python but not from
a reader, who can no longer read the modules bottom-up. Each room (``core``, ``supernet``,
``hardware``, ``predictors``, ``search``, the front door) is mapped to its folder as setup.py
maps it, and every ``import``/``from elasticnas...`` in a module's syntax tree is an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rooms() -> dict[str, str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "ROOMS":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py defines no ROOMS")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package, folder in rooms().items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            modules[".".join((package, *parts))] = path
    return modules


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("elasticnas"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("elasticnas"))
    return {name for name in found if name in modules}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
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


def test_the_cycle_finder_finds_a_cycle_and_nothing_else():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back_even_inside_a_function():
    modules = project_modules()
    assert "elasticnas.cli" in modules and "elasticnas.hardware.lookup" in modules  # the rooms were read
    graph = {name: imports_of(path, modules) - {name} for name, path in modules.items()}
    assert cycles(graph) == []


def test_modules_are_named_after_their_job_once():
    """Two modules with one file name in different rooms (two finetuning.py) hide which is meant."""
    names: dict[str, list[str]] = {}
    for module, path in project_modules().items():
        if path.name != "__init__.py" and not module.startswith("elasticnas.supernet.families."):
            names.setdefault(path.name, []).append(module)
    assert {name: found for name, found in names.items() if len(found) > 1} == {}
