"""elasticnas: train an elastic supernet once, then predict, search and export subnets.

The package's rooms are ``elasticnas.supernet``, ``elasticnas.hardware``,
``elasticnas.predictors`` and ``elasticnas.search``; this module re-exports their front door.
"""

from elasticnas.hardware import count_macs, count_params, model_size_bytes, peak_activation_bytes
from elasticnas.supernet import (
    Arch,
    ConfigError,
    ElasticNASError,
    InvalidArchitectureError,
    UnknownNameError,
    create_space,
    create_supernet,
    list_supernets,
)

__version__ = "0.1.0"

# The rest of the front door loads on first use, so that `elasticnas --help` stays quick.
_LAZY = {
    "elasticize": "elasticnas.supernet.families.graph",
    "load_subnet": "elasticnas.export",
    "export_subnet": "elasticnas.export",
    "quickstart": "elasticnas.pipeline",
    "export_from_run": "elasticnas.pipeline",
    "load_trained": "elasticnas.runs",
    "import_checkpoint": "elasticnas.importing",
    "load_experiment": "elasticnas.experiment",
    "train_experiment": "elasticnas.experiment",
    "measure_run": "elasticnas.measure",
    "fit_run": "elasticnas.measure",
    "search_run": "elasticnas.searching",
    "run_search": "elasticnas.search",
    "run_guided_search": "elasticnas.search",
    "Objective": "elasticnas.search",
    "ArchEncoder": "elasticnas.predictors",
    "AutoPredictor": "elasticnas.predictors",
    "LatencyTable": "elasticnas.hardware",
    "write_slices": "elasticnas.slices",
    "load_slice": "elasticnas.slices",
    "load_corpus": "elasticnas.text_data",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'elasticnas' has no attribute {name!r}")

__all__ = [
    "Arch",
    "ArchEncoder",
    "AutoPredictor",
    "LatencyTable",
    "Objective",
    "elasticize",
    "export_from_run",
    "export_subnet",
    "fit_run",
    "import_checkpoint",
    "load_corpus",
    "load_experiment",
    "load_slice",
    "load_subnet",
    "load_trained",
    "measure_run",
    "quickstart",
    "run_guided_search",
    "run_search",
    "search_run",
    "train_experiment",
    "write_slices",
    "ConfigError",
    "ElasticNASError",
    "InvalidArchitectureError",
    "UnknownNameError",
    "__version__",
    "count_macs",
    "count_params",
    "create_space",
    "create_supernet",
    "list_supernets",
    "model_size_bytes",
    "peak_activation_bytes",
]
