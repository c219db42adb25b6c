"""ResNet (Once-for-All's ResNet50D: elastic depth, expand ratio and width)."""

from elasticnas.supernet.families.resnet import presets as _presets  # noqa: F401  (registers the family)
from elasticnas.supernet.families.resnet.arch import ResNetArch
from elasticnas.supernet.families.resnet.network import ResNetSupernet
from elasticnas.supernet.families.resnet.space import ResNetSpace

__all__ = ["ResNetArch", "ResNetSpace", "ResNetSupernet"]
