"""Counts against values computed by hand (the conformance suite checks them against hooks)."""

from __future__ import annotations

import time

from elasticnas.hardware import count_all, count_macs, count_params, layer_cost, peak_activation_bytes
from elasticnas.supernet import create_space
from elasticnas.supernet.families.mobilenetv3.blocks import MBConvSpec
from elasticnas.supernet.specs import ConvSpec, LinearSpec, PoolSpec


def test_mbconv_with_se_by_hand():
    spec = MBConvSpec(in_channels=16, mid_channels=48, out_channels=24, kernel_size=5, stride=2, resolution=8,
                      activation="relu", se_channels=16, expand=True, residual=False)
    assert spec.out_resolution == 4
    cost = layer_cost(spec)
    # expand 16*48 + depthwise 48*25 + SE 2*48*16 + 16 + 48 + project 48*24 + BN 2*(48+48+24)
    assert cost.params == 768 + 1200 + 1600 + 1152 + 240
    # expand at 8x8, depthwise and project at 4x4, SE at 1x1
    assert cost.macs == 768 * 64 + 1200 * 16 + 1536 + 1152 * 16
    # the expand step holds the input (16*64) and its output (48*64)
    assert cost.peak_elements == 16 * 64 + 48 * 64
    assert cost.bn_channels == 120


def test_residual_block_keeps_its_input_alive():
    spec = MBConvSpec(24, 72, 24, 3, 1, 4, "relu", 0, True, True)
    # depthwise step: input (24*16) + expanded (72*16) + depthwise output (72*16)
    assert layer_cost(spec).peak_elements == 24 * 16 + 2 * 72 * 16


def test_conv_linear_pool_by_hand():
    stem = layer_cost(ConvSpec(3, 16, 3, 2, 32, "hswish"))
    assert (stem.params, stem.macs) == (3 * 16 * 9 + 32, 3 * 16 * 9 * 16 * 16)
    mix = layer_cost(ConvSpec(960, 1280, 1, 1, 1, "hswish", batch_norm=False))
    assert (mix.params, mix.macs, mix.bn_channels) == (960 * 1280, 960 * 1280, 0)
    head = layer_cost(LinearSpec(1280, 10))
    assert (head.params, head.macs) == (12810, 12800)
    assert layer_cost(PoolSpec(960, 7)).macs == 0


def test_ofa_reference_counts():
    """Facts measured with the ``ofa`` package on the same space (MACs: the exact integer)."""
    for classes, max_params, min_params in ((1000, 7_664_760, 3_410_792), (10, 6_396_570, 2_142_602)):
        space = create_space("ofa_mbv3_w10", num_classes=classes)
        assert count_params(space, space.max()) == max_params
        assert count_params(space, space.min()) == min_params
    space = create_space("ofa_mbv3_w10", num_classes=10)
    assert count_macs(space, space.max()) == 564_903_456


def test_tiny_preset_min_is_several_times_cheaper_than_max():
    space = create_space("tiny_mbv3", num_classes=10, in_channels=1)
    assert count_macs(space, space.max()) > 4 * count_macs(space, space.min())


def test_count_all_agrees_with_single_counters_and_batch_scales_peak():
    space = create_space("tiny_mbv3", num_classes=10)
    archs = space.sample(0, n=20)
    table = count_all(space, archs)
    assert table["macs"].tolist() == [count_macs(space, a) for a in archs]
    assert table["params"].tolist() == [count_params(space, a) for a in archs]
    assert peak_activation_bytes(space, archs[0], batch_size=8) == 8 * table["peak_activation_bytes"][0]


def test_counting_is_fast_enough_for_search():
    space = create_space("ofa_mbv3_w10", num_classes=1000)
    archs = space.sample(1, n=2000)
    start = time.perf_counter()
    count_all(space, archs)
    # a loose floor, an order of magnitude under what it does, only to catch regressions to hook counting
    assert 2000 / (time.perf_counter() - start) > 1000
