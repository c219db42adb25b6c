"""Elastic operators: each slices one set of maximum-size weights to the active size."""

from elasticnas.supernet.layers.activation import build_activation
from elasticnas.supernet.layers.conv import ElasticConv2d, ElasticDepthwiseConv2d
from elasticnas.supernet.layers.convbn import ElasticConvBNAct
from elasticnas.supernet.layers.linear import ElasticClassifier, ElasticLinear
from elasticnas.supernet.layers.norm import ElasticBatchNorm2d
from elasticnas.supernet.layers.se import ElasticSqueezeExcite

__all__ = [
    "ElasticBatchNorm2d",
    "ElasticClassifier",
    "ElasticConv2d",
    "ElasticConvBNAct",
    "ElasticDepthwiseConv2d",
    "ElasticLinear",
    "ElasticSqueezeExcite",
    "build_activation",
]
