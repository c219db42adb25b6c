"""The ResNet family's registration and presets."""

from __future__ import annotations

from elasticnas.supernet.catalogue import register_family, register_supernet
from elasticnas.supernet.families.resnet.network import ResNetSupernet
from elasticnas.supernet.families.resnet.space import ResNetSpace

register_family("resnet", space=ResNetSpace, supernet=ResNetSupernet)


@register_supernet("ofa_resnet50")
def ofa_resnet50(num_classes: int, in_channels: int = 3) -> ResNetSpace:
    """Once-for-All's ResNet50D space: deep stem, bottlenecks with average-pool downsampling shortcuts,
    0-2 extra blocks per stage, expand ratio 0.2/0.25/0.35 per block, width 0.65/0.8/1.0 per position."""
    return ResNetSpace(
        name="ofa_resnet50",
        num_classes=num_classes,
        in_channels=in_channels,
        stem_channels=64,
        stage_channels=(256, 512, 1024, 2048),
        base_depths=(2, 2, 4, 2),
        stage_strides=(1, 2, 2, 2),
        resolutions=tuple(range(128, 225, 4)),
        depth_choices=(0, 1, 2),
        expand_choices=(0.2, 0.25, 0.35),
        width_choices=(0.65, 0.8, 1.0),
        dropout=0.1,
    )


@register_supernet("tiny_resnet")
def tiny_resnet(num_classes: int, in_channels: int = 3) -> ResNetSpace:
    """A ResNet space for 20-32 px images (MNIST, CIFAR): the same family, narrow, with a stride-2 stem
    and no max pooling, so that a 28 px MNIST epoch trains in seconds on a CPU."""
    return ResNetSpace(
        name="tiny_resnet",
        num_classes=num_classes,
        in_channels=in_channels,
        stem_channels=48,
        stage_channels=(96, 128, 160, 192),
        base_depths=(1, 1, 1, 1),
        stage_strides=(1, 2, 2, 1),
        resolutions=(20, 24, 28, 32),
        depth_choices=(0, 1, 2),
        expand_choices=(0.2, 0.25, 0.35),
        width_choices=(0.65, 0.8, 1.0),
        max_pool=False,
        channel_divisor=4,
        dropout=0.1,
    )
