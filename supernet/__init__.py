"""Search spaces, elastic layers, supernet families, training, extraction (``elasticnas.supernet``)."""

from elasticnas.supernet import presets as _presets  # noqa: F401  (registers the presets)
from elasticnas.supernet.arch import Arch
from elasticnas.supernet.errors import ConfigError, ElasticNASError, InvalidArchitectureError, UnknownNameError
from elasticnas.supernet.evaluation import EvalData, EvalResult, calibrated_subnet, evaluate, evaluate_many
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
from elasticnas.supernet.samplers import create_strategy, list_strategies, register_strategy
from elasticnas.supernet.space import MobileNetV3Space
from elasticnas.supernet.static import build_static
from elasticnas.supernet.training import OptimConfig, SamplerConfig, TrainConfig, Trainer, TrainingInterrupted

__all__ = [
    "Arch",
    "ConfigError",
    "ElasticNASError",
    "EvalData",
    "EvalResult",
    "InvalidArchitectureError",
    "MobileNetV3Space",
    "MobileNetV3Supernet",
    "OptimConfig",
    "SamplerConfig",
    "TrainConfig",
    "Trainer",
    "TrainingInterrupted",
    "UnknownNameError",
    "build_static",
    "build_supernet",
    "calibrated_subnet",
    "create_space",
    "create_strategy",
    "create_supernet",
    "evaluate",
    "evaluate_many",
    "list_strategies",
    "list_supernets",
    "register_family",
    "register_strategy",
    "register_supernet",
    "reorder_channels",
]
