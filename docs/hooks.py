"""MkDocs hooks.

- The command-line reference page is generated from the parser at build time.
- The API reference reads the source statically; setup.py maps the rooms (supernet/, search/,
  ...) into the one ``elasticnas`` namespace, which a source reader cannot follow, so the
  namespace is assembled once as a tree of links under build/api.
- The benchmark files the pages link to (experiments/README.md, experiments/results/) join the
  site, so that the same relative links work on the site and in the repository.
"""

import ast
import re
import shutil
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

from elasticnas.cli_reference import cli_markdown

ROOT = Path(__file__).resolve().parent.parent
API_TREE = ROOT / "build" / "api"
OUTSIDE = "experiments"  # the one folder outside docs/ that pages link into
LINK_INTO_OUTSIDE = re.compile(r"\]\(\.\./" + OUTSIDE + "/")


def _rooms() -> dict[str, str]:
    """setup.py's ROOMS literal, read without running setup.py."""
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "ROOMS":
            return ast.literal_eval(node.value)
    raise RuntimeError("setup.py defines no ROOMS mapping")


@event_priority(100)  # before mkdocstrings reads its paths: the tree must exist by then
def on_config(config):
    shutil.rmtree(API_TREE, ignore_errors=True)
    rooms = _rooms()
    top = API_TREE / "elasticnas"
    top.mkdir(parents=True)
    for entry in (ROOT / rooms.pop("elasticnas")).iterdir():
        (top / entry.name).symlink_to(entry)
    for name, folder in rooms.items():
        (API_TREE / name.replace(".", "/")).symlink_to(ROOT / folder)
    return config


def on_files(files, config):
    files.append(File.generated(config, "cli.md", content=cli_markdown()))
    for path in [ROOT / OUTSIDE / "README.md", *sorted((ROOT / OUTSIDE / "results").glob("*.*"))]:
        src_uri = f"{OUTSIDE}/{path.relative_to(ROOT / OUTSIDE).as_posix()}"
        files.append(File.generated(config, src_uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri.startswith(f"{OUTSIDE}/"):  # its `../docs/x` in the repository is `../x` on the site
        return markdown.replace("](../docs/", "](../")
    # a page's `../experiments/x` in the repository is `experiments/x` on the site
    return LINK_INTO_OUTSIDE.sub(f"]({OUTSIDE}/", markdown)
