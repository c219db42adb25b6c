"""Vision Transformer (AutoFormer's weight entanglement: elastic embedding width, depth, heads, MLP ratio)."""

from elasticnas.supernet.families.vit import presets as _presets  # noqa: F401  (registers the family)
from elasticnas.supernet.families.vit.arch import ViTArch
from elasticnas.supernet.families.vit.network import ViTSupernet
from elasticnas.supernet.families.vit.space import ViTSpace

__all__ = ["ViTArch", "ViTSpace", "ViTSupernet"]
