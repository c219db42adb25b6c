"""Search spaces, elastic layers, supernet families, training, extraction (``elasticnas.supernet``)."""

from elasticnas.core.errors import ConfigError, ElasticNASError, InvalidArchitectureError, UnknownNameError
from elasticnas.supernet import families as _families  # noqa: F401  (registers every family)
from elasticnas.supernet.arch import Arch
from elasticnas.supernet.catalogue import (
    build_supernet,
    create_space,
    create_supernet,
    list_families,
    list_supernets,
    register_family,
    register_supernet,
    space_from_config,
)
from elasticnas.supernet.evaluation import EvalData, EvalResult, calibrated_subnet, evaluate, evaluate_many
from elasticnas.supernet.module import ElasticBlock, Supernet
from elasticnas.supernet.reorder import reorder_channels
from elasticnas.supernet.samplers import Strategy, create_strategy, list_strategies, register_strategy
from elasticnas.supernet.space import Gene, LayerSlot, SearchSpace
from elasticnas.supernet.static import build_static
from elasticnas.supernet.training import OptimConfig, SamplerConfig, TrainConfig, Trainer, TrainingInterrupted

__all__ = [
    "Arch",
    "ConfigError",
    "ElasticBlock",
    "ElasticNASError",
    "EvalData",
    "EvalResult",
    "Gene",
    "InvalidArchitectureError",
    "LayerSlot",
    "OptimConfig",
    "SamplerConfig",
    "SearchSpace",
    "Strategy",
    "Supernet",
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
    "list_families",
    "list_strategies",
    "list_supernets",
    "register_family",
    "register_strategy",
    "register_supernet",
    "reorder_channels",
    "space_from_config",
]
