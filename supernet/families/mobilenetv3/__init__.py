"""MobileNetV3 (Once-for-All's elastic kernel size, depth and expand ratio)."""

from elasticnas.supernet.families.mobilenetv3 import ofa_checkpoint as _ofa  # noqa: F401  (registers 'ofa')
from elasticnas.supernet.families.mobilenetv3 import presets as _presets  # noqa: F401  (registers the family)
from elasticnas.supernet.families.mobilenetv3.arch import MobileNetV3Arch
from elasticnas.supernet.families.mobilenetv3.network import MobileNetV3Supernet
from elasticnas.supernet.families.mobilenetv3.space import MobileNetV3Space

__all__ = ["MobileNetV3Arch", "MobileNetV3Space", "MobileNetV3Supernet"]
