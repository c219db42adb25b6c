"""Package discovery for the one ``elasticnas`` namespace spread over the repository's rooms.

pyproject.toml holds the metadata; this file only maps each room to its import name and
finds every sub-package below it, so a new family folder needs no packaging change. The
bundled experiment configs ship as package data of ``elasticnas.configs``.
"""

from pathlib import Path

from setuptools import setup

ROOMS = {"elasticnas": "elasticnas", "elasticnas.core": "core", "elasticnas.supernet": "supernet",
         "elasticnas.hardware": "hardware", "elasticnas.search": "search", "elasticnas.predictors": "predictors",
         "elasticnas.configs": "experiments/configs"}  # the bundled experiment YAMLs, as package data


def packages() -> list[str]:
    found = []
    for name, folder in ROOMS.items():
        root = Path(__file__).parent / folder
        for init in sorted(root.rglob("__init__.py")):
            relative = init.parent.relative_to(root).parts
            found.append(".".join((name, *relative)))
    return found


setup(packages=packages(), package_dir=ROOMS, package_data={"elasticnas.configs": ["*.yaml"]})
