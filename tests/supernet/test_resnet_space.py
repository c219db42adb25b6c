"""The ResNet family: Once-for-All's ResNet50D facts, its dict form, canonical forms, exact size."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from elasticnas.hardware import count_macs, count_params
from elasticnas.supernet import ConfigError, InvalidArchitectureError, create_space, create_supernet
from elasticnas.supernet.families.resnet import ResNetArch

OFA = create_space("ofa_resnet50", num_classes=1000)


def test_ofa_resnet50_counts_match_the_ofa_package():
    """Facts measured with the ``ofa`` package (1000 classes, conv + linear MACs at 224 px)."""
    largest, smallest = (dataclasses.replace(a, resolution=224) for a in (OFA.max(), OFA.min()))
    assert (count_params(OFA, largest), count_macs(OFA, largest)) == (48_105_992, 7_491_643_904)
    assert (count_params(OFA, smallest), count_macs(OFA, smallest)) == (6_539_280, 962_192_128)
    assert smallest.depths == (0, 0, 0, 0) and smallest.stem_depth == 0 and set(smallest.width_mults) == {0.65}


def test_ofa_dicts_are_read_and_written():
    ofa = {"d": [2, 1, 0, 2, 1], "e": [0.25] * 18, "w": [1, 2, 0, 1, 2, 0]}
    arch = OFA.from_dict(ofa)
    assert arch.resolution == 224 and arch.stem_depth == 1 and arch.depths == (1, 0, 2, 1)
    # 0.65 and 0.8 give the same 24 stem channels: one network, one canonical form
    assert arch.width_mults == (0.65, 1.0, 0.65, 0.8, 1.0, 0.65)
    assert OFA.from_dict({**ofa, "w": [0, 2, 0, 1, 2, 0]}) == arch
    assert OFA.from_dict({**ofa, "d": [1, 1, 0, 2, 1]}).stem_depth == 0  # only the largest depth keeps it
    back = OFA.to_foreign_dict(arch)
    assert OFA.from_dict(back) == arch and back["d"][0] == 2
    with pytest.raises(InvalidArchitectureError, match="indices"):
        OFA.from_dict({**ofa, "w": [3, 0, 0, 0, 0, 0]})
    with pytest.raises(InvalidArchitectureError, match="'d' entries"):
        OFA.from_dict({**ofa, "d": [2, 1]})


def test_inactive_blocks_are_canonical_and_validation_names_the_gene():
    arch = OFA.min()
    slots = list(OFA.stage_slots(0))
    assert arch.expand_ratios[slots[2]] == 0 and arch.expand_ratios[slots[1]] == 0.2
    noisy = dataclasses.replace(arch, expand_ratios=tuple(0.35 if e == 0 else e for e in arch.expand_ratios))
    assert OFA.canonical(noisy) == arch and (OFA.encode(noisy) == OFA.encode(arch)).all()
    with pytest.raises(InvalidArchitectureError, match=r"width_mults\[3\]=0.7 .*\[0.65, 0.8, 1.0\]"):
        OFA.validate(dataclasses.replace(arch, width_mults=(0.65, 0.65, 0.65, 0.7, 0.65, 0.65)))
    with pytest.raises(InvalidArchitectureError, match="width_mults needs 6"):
        ResNetArch(224, 0, (0, 0, 0, 0), (0.2,) * 18, (1.0,) * 5)


def test_size_counts_distinct_canonical_subnets_exactly():
    space = create_space("tiny_resnet", num_classes=10, resolutions=(28,), stage_channels=(96, 128),
                         base_depths=(1, 1), stage_strides=(1, 2), depth_choices=(0, 1), expand_choices=(0.2, 0.35),
                         width_choices=(0.65, 1.0))
    upper = space.encoding_upper_bounds
    distinct = {space.decode(np.array(g)) for g in itertools.product(*(range(u + 1) for u in upper))}
    assert space.size == len(distinct)
    # per stage: 1 base block (2 ratios) and 0-1 extra blocks -> 2 + 4 = 6; stem depth 2; widths 2**4
    assert space.size == 2 * 6 * 6 * 2**4


def test_layers_couple_stage_widths():
    """A stage's first block reads the previous stage's width: no independence between positions."""
    space = create_space("tiny_resnet", num_classes=10)
    arch = space.max()
    narrow = dataclasses.replace(arch, width_mults=(*arch.width_mults[:2], 0.65, *arch.width_mults[3:]))
    first_of_stage_1 = [s for s in space.layers(narrow) if getattr(s, "downsample", False)][1]
    assert first_of_stage_1.in_channels == space.width(space.stage_channels[0], 0.65)


def test_bad_spaces_are_refused_by_name():
    with pytest.raises(ConfigError, match="duplicate widths"):
        create_space("tiny_resnet", num_classes=10, channel_divisor=16)
    with pytest.raises(ConfigError, match="base_depths"):
        create_space("tiny_resnet", num_classes=10, base_depths=(1, 1))


def test_progressive_shrinking_has_a_width_phase():
    from elasticnas.supernet import create_strategy
    from elasticnas.supernet.samplers import StepContext

    net = create_supernet("tiny_resnet", num_classes=10, in_channels=1)
    strategy = create_strategy("progressive_shrinking", net.space)
    assert strategy.phases == ("full", "depth", "expand", "width") and strategy.reorder_phases() == ("expand",)
    expand_phase = [t.arch for t in strategy.sample(StepContext(55, 100))]
    assert all(set(a.width_mults) == {1.0} for a in expand_phase)
    width_phase = [t.arch for step in range(80, 100) for t in strategy.sample(StepContext(step, 100))]
    assert any(set(a.width_mults) != {1.0} for a in width_phase)
    out = net(torch.zeros(2, 1, 28, 28), dataclasses.replace(width_phase[0], resolution=28))
    assert out.shape == (2, 10)
