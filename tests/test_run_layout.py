"""One module owns the run folder's layout: core/run_layout.py names every file, and no other
module spells one of those names itself (docstrings aside), so the layout cannot drift apart."""

from __future__ import annotations

import ast
from pathlib import Path

from elasticnas.core import run_layout

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("elasticnas", "supernet", "hardware", "predictors", "search", "core")
FILE_NAMES = {value: name for name, values in vars(run_layout).items() if name.isupper()
              for value in (values if isinstance(values, tuple) else (values,)) if "." in value}  # not folders


def docstrings(tree: ast.AST) -> set[int]:
    kinds = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {id(node.body[0].value) for node in ast.walk(tree) if isinstance(node, kinds) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def spells_a_file(text: str) -> bool:
    """A layout name, alone or at the end of a path or glob (``"*/front.csv"``)."""
    return text in FILE_NAMES or any(text.endswith("/" + name) for name in FILE_NAMES)


def test_no_module_spells_a_run_file_name_itself():
    spelled = []
    for room in ROOMS:
        for path in sorted((ROOT / room).rglob("*.py")):
            if path == Path(run_layout.__file__).resolve():
                continue
            tree = ast.parse(path.read_text())
            skip = docstrings(tree)
            spelled += [f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
                        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
                        and spells_a_file(node.value)]
    assert not spelled, "\n".join(spelled)


def test_the_layout_docstring_names_every_file():
    described = run_layout.__doc__
    missing = [value for value in FILE_NAMES if value not in described]
    assert not missing, f"core/run_layout.py's docstring does not describe {missing}"
