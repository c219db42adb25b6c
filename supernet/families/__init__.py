"""Supernet families, one folder each; importing this package registers every one of them.

A family folder holds its space (genes and layer list), its architecture class, its layer
specs with their static and elastic modules, its supernet and its presets, and registers
them with :func:`elasticnas.supernet.catalogue.register_family` and ``register_supernet``.
Nothing outside the folder names the family: adding one is adding a folder.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
