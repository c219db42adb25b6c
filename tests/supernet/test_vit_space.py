"""The ViT family: counts against published and hand-computed figures, the attention against
torch's own, weight entanglement, position-embedding resampling, stochastic depth, errors."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from elasticnas.hardware import count_macs, count_params
from elasticnas.supernet import ConfigError, InvalidArchitectureError, create_space, create_supernet
from elasticnas.supernet.evaluation import EvalData, calibrated_subnet
from elasticnas.supernet.families.vit import ViTArch
from elasticnas.supernet.families.vit.layers import TransformerLayerSpec
from tests.conftest import hook_counts, make_supernet


def _deit_tiny(space) -> ViTArch:
    depth = 12
    return space.canonical(ViTArch(224, 192, depth, (3,) * space.max_depth, (4.0,) * space.max_depth))


def test_standard_subnet_of_autoformer_tiny_is_vit_tiny():
    """timm's vit_tiny_patch16_224 (DeiT-Tiny) has 5,717,416 parameters at 1000 classes."""
    space = create_space("autoformer_tiny", num_classes=1000)
    arch = _deit_tiny(space)
    assert count_params(space, arch) == 5_717_416
    # by hand: patch conv + bias, class token, 197 position embeddings; 12 layers; final norm; head
    per_layer = 2 * 2 * 192 + (192 * 576 + 576) + (192 * 192 + 192) + (192 * 768 + 768) + (768 * 192 + 192)
    by_hand = (192 * 3 * 16 * 16 + 192) + 192 + 197 * 192 + 12 * per_layer + 2 * 192 + (192 * 1000 + 1000)
    assert by_hand == 5_717_416
    tokens = 197
    per_layer_macs = tokens * (192 * 576 + 192 * 192 + 2 * 192 * 768) + 2 * 3 * tokens * tokens * 64
    assert count_macs(space, arch) == 192 * 3 * 16 * 16 * 196 + 12 * per_layer_macs + 192 * 1000


def test_transformer_layer_cost_by_hand():
    spec = TransformerLayerSpec(embed_dim=8, num_heads=2, head_dim=4, mlp_hidden=16, tokens=5)
    weights = 8 * 24 + 8 * 8 + 2 * 8 * 16
    assert spec.cost().params == weights + 24 + 8 + 16 + 8 + 4 * 8
    assert spec.cost().macs == 5 * weights + 2 * (2 * 5 * 5 * 4)  # two attention products per head
    assert spec.cost().bn_channels == 0
    model = spec.build()
    assert hook_counts(model, torch.zeros(1, 5, 8)) == (spec.cost().params, spec.cost().macs)


def test_static_layer_is_standard_multi_head_attention():
    """With heads x head_dim = embed_dim, a static layer's attention is torch's MultiheadAttention."""
    torch.manual_seed(0)
    spec = TransformerLayerSpec(embed_dim=12, num_heads=3, head_dim=4, mlp_hidden=24, tokens=7)
    layer = spec.build().eval()
    reference = nn.MultiheadAttention(12, 3, batch_first=True).eval()
    with torch.no_grad():
        reference.in_proj_weight.copy_(layer.attn.qkv.weight)
        reference.in_proj_bias.copy_(layer.attn.qkv.bias)
        reference.out_proj.weight.copy_(layer.attn.proj.weight)
        reference.out_proj.bias.copy_(layer.attn.proj.bias)
    x = torch.randn(2, 7, 12)
    h = layer.norm1(x)
    expected, _ = reference(h, h, h, need_weights=False)
    torch.testing.assert_close(layer.attn(h), expected, rtol=1e-5, atol=1e-6)
    mlp = layer.mlp.fc2(F.gelu(layer.mlp.fc1(layer.norm2(x + expected))))
    torch.testing.assert_close(layer(x), x + expected + mlp, rtol=1e-5, atol=1e-6)


def test_fewer_heads_keep_the_first_rows_of_q_k_and_v_and_train_only_them():
    net = make_supernet("tiny_vit").train()
    space = net.space
    arch = dataclasses.replace(space.max(), num_heads=(1,) * space.max_depth)
    full, width, embed = 3 * space.head_dim, space.head_dim, max(space.embed_choices)
    state = net.active_state_dict(arch)
    qkv = net.blocks[0].qkv.weight
    expected = torch.cat([qkv[i * full : i * full + width] for i in range(3)])
    torch.testing.assert_close(state["1.attn.qkv.weight"], expected, rtol=0, atol=0)
    x = torch.randn(3, space.in_channels, arch.resolution, arch.resolution)
    net(x, arch).sum().backward()
    rows = torch.zeros(3 * full, dtype=torch.bool)
    for i in range(3):
        rows[i * full : i * full + width] = True
    grad = net.blocks[0].qkv.weight.grad
    assert grad.shape == (3 * full, embed)
    assert grad[~rows].abs().sum() == 0 and grad[rows].abs().sum() > 0


def test_smaller_resolution_resamples_the_position_embeddings_bicubically():
    net = make_supernet("tiny_vit")
    space = net.space
    grid = max(space.resolutions) // space.patch_size
    embed = 80
    for resolution in space.resolutions:
        arch = dataclasses.replace(space.max(), resolution=resolution, embed_dim=embed)
        pos = net.extract(arch)[0].pos_embed
        table = net.patch_embed.pos_embed[:, :, :embed].detach()
        small = resolution // space.patch_size
        patches = table[:, 1:].reshape(1, grid, grid, embed).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=(small, small), mode="bicubic", align_corners=False)
        expected = torch.cat([table[:, :1], patches.permute(0, 2, 3, 1).reshape(1, -1, embed)], 1)
        assert pos.shape == (1, small * small + 1, embed)
        torch.testing.assert_close(pos, expected, rtol=0, atol=0)


def test_stochastic_depth_trains_alike_in_supernet_and_extracted_subnet():
    net = create_supernet("tiny_vit", num_classes=10, in_channels=1, drop_path=0.3).train()
    arch = net.space.sample(5)
    static = net.extract(arch).train()
    x = torch.randn(16, 1, arch.resolution, arch.resolution)
    torch.manual_seed(1)
    elastic_out = net(x, arch)
    torch.manual_seed(1)
    torch.testing.assert_close(static(x), elastic_out, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(elastic_out, net.eval()(x, arch))  # in training, branches were dropped


def test_recalibration_is_a_no_op_without_batch_norm_and_says_so(caplog):
    net = make_supernet("tiny_vit", in_channels=1)
    arch = net.space.sample(2)
    calls = []
    net.register_forward_hook(lambda *_: calls.append(1))
    data = EvalData(torch.randn(8, 1, 32, 32), torch.zeros(0, 1, 32, 32), torch.zeros(0, dtype=torch.long))
    with caplog.at_level(logging.INFO):
        from elasticnas.supernet.evaluation import _say_nothing_to_recalibrate

        _say_nothing_to_recalibrate.cache_clear()
        model = calibrated_subnet(net, arch, data)
    assert "no batch norm" in caplog.text
    assert not calls and not model.training
    x = torch.randn(2, 1, arch.resolution, arch.resolution)
    torch.testing.assert_close(model(x), net.eval()(x, arch), rtol=0, atol=1e-5)


def test_autoformer_dicts_round_trip_and_bad_ones_are_named():
    space = create_space("autoformer_tiny", num_classes=1000)
    arch = _deit_tiny(space)
    foreign = space.to_foreign_dict(arch)
    assert foreign["layer_num"] == 12 and foreign["embed_dim"] == [192] * 12
    assert space.from_dict(foreign) == arch
    with pytest.raises(InvalidArchitectureError, match="same in every layer"):
        space.from_dict({**foreign, "embed_dim": [192] * 11 + [216]})
    with pytest.raises(InvalidArchitectureError, match="keys"):
        space.from_dict({"layer_num": 12, "embed_dim": [192] * 12})


def test_architectures_outside_the_space_are_named():
    space = create_space("tiny_vit", num_classes=10)
    with pytest.raises(InvalidArchitectureError, match=r"num_heads\[0\]=4 is not allowed; choose one of \[1, 2, 3\]"):
        space.validate(dataclasses.replace(space.max(), num_heads=(4,) * space.max_depth))
    with pytest.raises(InvalidArchitectureError, match="embed_dim=72"):
        space.validate(dataclasses.replace(space.max(), embed_dim=72))
    with pytest.raises(InvalidArchitectureError, match="depth=7 is outside"):
        ViTArch(32, 64, 7, (1,) * 6, (2,) * 6)


@pytest.mark.parametrize(("override", "message"), [
    ({"resolutions": (28, 30)}, "multiples of patch_size=4"),
    ({"mlp_ratio_choices": (2.0, 2.01)}, "MLP widths"),
    ({"drop_path": 1.0}, r"\[0, 1\)"),
    ({"head_choices": (0, 1)}, ">= 1"),
])
def test_bad_space_configs_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        create_space("tiny_vit", num_classes=10, **override)


def test_class_token_and_position_embeddings_skip_weight_decay():
    net = create_supernet("tiny_vit", num_classes=10)
    names = dict(net.named_parameters())
    assert net.no_weight_decay() <= set(names)


def test_onnx_and_torch_export_programs_run_attention_like_torch(tmp_path):
    from elasticnas.export import export_subnet, load_subnet

    net = make_supernet("tiny_vit", in_channels=1).eval()
    arch = dataclasses.replace(net.space.sample(8), resolution=28)  # a resampled position grid
    report = export_subnet(net.extract(arch), net.space, arch, tmp_path)
    assert set(report["max_relative_difference"]) == {"torch_export", "onnx"}
    assert max(report["max_relative_difference"].values()) <= 1e-4  # export_subnet also refuses worse
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(load_subnet(tmp_path)(x), net(x, arch), rtol=0, atol=1e-5)
