"""The documentation site builds strictly, and its examples work as written.

Python blocks of the getting-started page, the own-model page, the language-model page and the
README run, each page's blocks in order in one namespace, in a scratch folder. Shell blocks are
checked rather than run (the quickstart alone takes minutes): every ``elasticnas`` line must
parse with the real command line, every ``make`` target must exist and every
``pip install .[extra]`` must name an extra that pyproject.toml defines.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from elasticnas.cli import build_parser
from elasticnas.command_registry import UsageError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PAGES = ["docs/index.md", "docs/howto.md", "docs/own_model.md", "docs/language_models.md", "README.md"]
# the how-tos' examples are commands
PYTHON_PAGES = ["docs/index.md", "docs/own_model.md", "docs/language_models.md", "README.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(page: str, languages: set[str]) -> list[str]:
    return [body for language, body in FENCE.findall((ROOT / page).read_text()) if language in languages]


def shell_lines(block: str) -> list[list[str]]:
    """Each command of a shell block as words: continuations joined, comments and `&` dropped,
    `a && b` split in two."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words and words[-1] == "&":
            words.pop()
        while "&&" in words:
            cut = words.index("&&")
            commands.append(words[:cut])
            words = words[cut + 1:]
        if words:
            commands.append(words)
    return commands


def optional_dependencies() -> set[str]:
    """The extras pyproject.toml defines (read as text: tomllib is Python 3.11+)."""
    section = (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]\n", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([\w-]+) = ", section, re.M))


def test_the_site_builds_strictly(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                           cwd=ROOT, env=env, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-4000:]
    cli_page = (tmp_path / "cli" / "index.html").read_text()
    assert all(f'id="{name}"' in cli_page for name in ("train", "quickstart", "elasticize"))
    reference = (tmp_path / "reference" / "index.html").read_text()
    assert "elasticnas.pipeline.quickstart" in reference and "Could not collect" not in reference


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    code = blocks(page, {"python"})
    assert code, f"{page} holds no Python block"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in code:
        exec(compile(block, page, "exec"), namespace)


@pytest.mark.parametrize("page", EXAMPLE_PAGES + ["docs/pipeline.md"])
def test_shell_blocks_name_real_commands(page):
    parser = build_parser()
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    extras = optional_dependencies()
    checked = 0
    for block in blocks(page, {"bash", "sh", "shell"}):
        for words in shell_lines(block):
            words = [re.sub(r"\$(\w+)", "postgresql://u@h/db", word) for word in words]  # variables set above
            if words[0] == "elasticnas":
                try:
                    parser.parse_args(words[1:])
                except UsageError as error:
                    pytest.fail(f"{page}: `{shlex.join(words)}`: {error}")
            elif words[0] == "make":
                assert set(words[1:]) <= targets, f"{page}: `{shlex.join(words)}` names no Makefile target"
            elif words[:2] == ["pip", "install"]:
                for extra in re.findall(r"\[([\w,-]+)\]", " ".join(words)):
                    assert set(extra.split(",")) <= extras, f"{page}: extras {extra} not in pyproject.toml"
            else:
                continue
            checked += 1
    assert checked or not blocks(page, {"bash", "sh", "shell"}), f"{page}: no shell line was checked"
