"""Once-for-All's published MobileNetV3 supernets (``ofa_mbv3_d234_e346_k357_w1.0`` / ``_w1.2``), read
into this family's supernet of the matching preset (``ofa_mbv3_w10`` / ``ofa_mbv3_w12``).

The layouts differ only in names: OFA keeps its first block inside ``blocks`` (index 0), so its
block ``i`` is our elastic block ``i - 1``; its kernel-transform matrices are the same linear maps
as our ``transforms`` (applied as ``F.linear(centre, matrix)``, chained largest kernel first), and
its squeeze-excite is a ``fc.reduce`` / ``fc.expand`` pair of biased 1x1 convolutions.
Older OFA files name the block body ``mobile_inverted_conv`` and nest ``bn``/``conv``/``linear``
once less (or once more); both spellings are accepted, as ``OFAMobileNetV3.load_state_dict`` does.
"""

from __future__ import annotations

import re

from elasticnas.supernet.foreign import register_foreign_format

_PARTS = {"inverted_bottleneck": "expand", "depth_conv": "depthwise", "point_linear": "project"}
_COLLAPSE = ((".mobile_inverted_conv.", ".conv."), (".bn.bn.", ".bn."), (".conv.conv.weight", ".conv.weight"),
             (".linear.linear.", ".linear."))
_BLOCK = re.compile(r"blocks\.(\d+)\.conv\.(inverted_bottleneck|depth_conv|point_linear)\.(.+)")
_TRANSFORM = re.compile(r"conv\.(\d+)to(\d+)_matrix")
_SE = re.compile(r"se\.fc\.(reduce|expand)\.(weight|bias)")
_PLAIN = re.compile(r"(conv\.weight|bn\.(weight|bias|running_mean|running_var|num_batches_tracked))")
_HEAD = {"first_conv": "stem", "final_expand_layer": "final_expand", "feature_mix_layer": "feature_mix"}


def canonical_ofa_name(name: str) -> str:
    """One spelling for the current and older OFA names of a tensor."""
    for old, new in _COLLAPSE:
        name = name.replace(old, new)
    return name


@register_foreign_format("ofa", family="mobilenetv3",
                         description="Once-for-All OFAMobileNetV3 state dict (current or older key names)")
def ofa_to_elasticnas(name: str) -> str:
    """Our name of the OFA tensor ``name`` (unchanged when it is not an OFA MobileNetV3 name, so
    that the caller reports it as foreign)."""
    name = canonical_ofa_name(name)
    head, _, rest = name.partition(".")
    if head in _HEAD and _PLAIN.fullmatch(rest):
        return f"{_HEAD[head]}.{rest}"
    if name in ("classifier.linear.weight", "classifier.linear.bias"):
        return "classifier." + name.rsplit(".", 1)[1]
    block = _BLOCK.fullmatch(name)
    if block is None:
        return name
    index, part, rest = int(block[1]), _PARTS[block[2]], block[3]
    prefix = f"first_block.{part}" if index == 0 else f"blocks.{index - 1}.{part}"
    if _PLAIN.fullmatch(rest):
        return f"{prefix}.{rest}"
    if transform := _TRANSFORM.fullmatch(rest):
        return f"{prefix}.conv.transforms.{transform[1]}to{transform[2]}"
    if se := _SE.fullmatch(rest):
        return f"{prefix.rsplit('.', 1)[0]}.se.{se[1]}_{se[2]}"
    return name
