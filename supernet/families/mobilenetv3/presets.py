"""The MobileNetV3 family's registration and presets."""

from __future__ import annotations

from elasticnas.supernet.catalogue import register_family, register_supernet
from elasticnas.supernet.families.mobilenetv3.network import MobileNetV3Supernet
from elasticnas.supernet.families.mobilenetv3.space import MobileNetV3Space
from elasticnas.supernet.specs import make_divisible

register_family("mobilenetv3", space=MobileNetV3Space, supernet=MobileNetV3Supernet)

# Once-for-All's ImageNet MobileNetV3 space: widths 16 | 16 | 24 40 80 112 160 | 960 1280.
_OFA_WIDTHS = (16, 16, 24, 40, 80, 112, 160)


def _ofa_mbv3(width_mult: float, name: str, num_classes: int, in_channels: int) -> MobileNetV3Space:
    widths = [make_divisible(w * width_mult, 8) for w in _OFA_WIDTHS]
    return MobileNetV3Space(
        name=name,
        num_classes=num_classes,
        in_channels=in_channels,
        stem_channels=widths[0],
        first_block_channels=widths[1],
        stage_channels=tuple(widths[2:]),
        stage_strides=(2, 2, 2, 1, 2),
        stage_activations=("relu", "relu", "hswish", "hswish", "hswish"),
        stage_se=(False, True, False, True, True),
        final_expand_channels=make_divisible(960 * width_mult, 8),
        feature_mix_channels=make_divisible(1280 * width_mult, 8),
        resolutions=tuple(range(128, 225, 4)),  # Once-for-All trains on 128..224 px in steps of 4
        depth_choices=(2, 3, 4),
        kernel_choices=(3, 5, 7),
        expand_choices=(3, 4, 6),
    )


@register_supernet("ofa_mbv3_w10")
def ofa_mbv3_w10(num_classes: int, in_channels: int = 3) -> MobileNetV3Space:
    """Once-for-All MobileNetV3, width multiplier 1.0 (about 2e19 subnets per resolution)."""
    return _ofa_mbv3(1.0, "ofa_mbv3_w10", num_classes, in_channels)


@register_supernet("ofa_mbv3_w12")
def ofa_mbv3_w12(num_classes: int, in_channels: int = 3) -> MobileNetV3Space:
    """Once-for-All MobileNetV3, width multiplier 1.2."""
    return _ofa_mbv3(1.2, "ofa_mbv3_w12", num_classes, in_channels)


@register_supernet("tiny_mbv3")
def tiny_mbv3(num_classes: int, in_channels: int = 3) -> MobileNetV3Space:
    """A MobileNetV3 space for 20-32 px images (MNIST, CIFAR): trains in seconds per epoch on a CPU."""
    return MobileNetV3Space(
        name="tiny_mbv3",
        num_classes=num_classes,
        in_channels=in_channels,
        stem_channels=16,
        first_block_channels=16,
        stage_channels=(16, 24, 32, 48, 64),
        stage_strides=(1, 2, 2, 1, 2),
        stage_activations=("relu", "relu", "hswish", "hswish", "hswish"),
        stage_se=(False, True, False, True, True),
        final_expand_channels=192,
        feature_mix_channels=256,
        resolutions=(20, 24, 28, 32),
        depth_choices=(1, 2, 3),
        kernel_choices=(3, 5, 7),
        expand_choices=(2, 3, 4),
        stem_stride=2,  # 28 px MNIST -> 14 px after the stem; the max subnet trains an epoch of 4,000 images in ~11 s
        dropout=0.1,
    )
