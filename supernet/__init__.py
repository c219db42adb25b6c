"""Search spaces, elastic layers, supernet families, extraction (``elasticnas.supernet``)."""

from elasticnas.supernet import presets as _presets  # noqa: F401  (registers the presets)
from elasticnas.supernet.arch import Arch
from elasticnas.supernet.errors import ConfigError, ElasticNASError, InvalidArchitectureError, UnknownNameError
from elasticnas.supernet.mobilenetv3 import MobileNetV3Supernet
from elasticnas.supernet.registry import (
    build_supernet,
    create_space,
    create_supernet,
    list_supernets,
    register_family,
    register_supernet,
)
from elasticnas.supernet.reorder import reorder_channels
from elasticnas.supernet.space import MobileNetV3Space
from elasticnas.supernet.static import build_static

__all__ = [
    "Arch",
    "ConfigError",
    "ElasticNASError",
    "InvalidArchitectureError",
    "MobileNetV3Space",
    "MobileNetV3Supernet",
    "UnknownNameError",
    "build_static",
    "build_supernet",
    "create_space",
    "create_supernet",
    "list_supernets",
    "register_family",
    "register_supernet",
    "reorder_channels",
]
