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

__all__ = [
    "Arch",
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
