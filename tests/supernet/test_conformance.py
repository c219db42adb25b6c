"""Conformance suite: every registered supernet must pass all of these."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elasticnas.hardware import count_macs, count_params, model_size_bytes
from elasticnas.supernet import InvalidArchitectureError, reorder_channels
from tests.conftest import hook_counts, make_supernet


def _archs(space, n_random=2, seed=0):
    return [space.max(), space.min(), *space.sample(seed, n=n_random)]


def _input(space, arch, batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, space.in_channels, arch.resolution, arch.resolution, generator=gen)


def test_forward_min_max_random_shapes_and_finite(supernet_name):
    net = make_supernet(supernet_name).eval()
    for arch in _archs(net.space):
        net.set_active(arch)
        out = net(_input(net.space, arch))
        assert out.shape == (2, net.space.num_classes)
        assert torch.isfinite(out).all()


def test_different_architectures_give_different_outputs(supernet_name):
    net = make_supernet(supernet_name).eval()
    space = net.space
    x = _input(space, space.max())
    small = space.min().__class__(space.max().resolution, space.min().depths,
                                  space.min().kernel_sizes, space.min().expand_ratios)
    assert not torch.allclose(net(x, space.max()), net(x, small))


def test_extracted_model_matches_supernet_in_eval(supernet_name):
    net = make_supernet(supernet_name).eval()
    for arch in _archs(net.space, n_random=3, seed=1):
        x = _input(net.space, arch)
        static = net.extract(arch).eval()
        expected = net(x, arch)
        torch.testing.assert_close(static(x), expected, rtol=0, atol=1e-5 * max(1.0, expected.abs().max().item()))


def test_extracted_model_is_plain_torch_and_independent(supernet_name):
    net = make_supernet(supernet_name)
    arch = net.space.sample(3)
    static = net.extract(arch)
    allowed = (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Linear, torch.nn.ReLU, torch.nn.Hardswish,
               torch.nn.Identity, torch.nn.Dropout)
    from elasticnas.supernet import static as static_module
    for module in static.modules():
        assert isinstance(module, allowed) or type(module).__module__ == static_module.__name__ \
            or isinstance(module, torch.nn.Sequential), type(module)
    supernet_ptrs = {t.data_ptr() for t in [*net.parameters(), *net.buffers()]}
    assert not {t.data_ptr() for t in [*static.parameters(), *static.buffers()]} & supernet_ptrs
    before = static[0].conv.weight.clone()
    with torch.no_grad():
        net.stem.conv.weight.add_(1.0)
    torch.testing.assert_close(static[0].conv.weight, before)


def test_training_step_updates_shared_bn_statistics_through_slices(supernet_name):
    net = make_supernet(supernet_name).train()
    arch = net.space.min()
    bn = net.blocks[0].expand.bn
    mid = net.space.layers(arch)[2].mid_channels
    assert mid < bn.num_features
    before = bn.running_mean.clone()
    net(_input(net.space, arch, batch=4), arch).sum().backward()
    assert not torch.equal(bn.running_mean[:mid], before[:mid])
    torch.testing.assert_close(bn.running_mean[mid:], before[mid:])
    grad = net.blocks[0].expand.conv.weight.grad
    assert grad[:mid].abs().sum() > 0 and grad[mid:].abs().sum() == 0


def test_analytic_counts_equal_hook_counts(supernet_name):
    net = make_supernet(supernet_name)
    space = net.space
    for arch in _archs(space, n_random=3, seed=2):
        static = net.extract(arch)
        params, macs = hook_counts(static, _input(space, arch, batch=1))
        assert count_params(space, arch) == params
        assert count_macs(space, arch) == macs
        state_bytes = sum(t.numel() * t.element_size() for k, t in static.state_dict().items()
                          if t.is_floating_point())
        assert model_size_bytes(space, arch) == state_bytes


def test_channel_reordering_keeps_max_function_and_sorts_importance(supernet_name):
    net = make_supernet(supernet_name).eval()
    arch = net.space.max()
    x = _input(net.space, arch)
    before = net(x, arch)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(x, arch).sum().backward()
    opt.step()
    before = net(x, arch)
    momentum = opt.state[net.blocks[0].project.conv.weight]["momentum_buffer"].clone()
    perms = reorder_channels(net, opt)
    torch.testing.assert_close(net(x, arch), before, rtol=1e-4, atol=1e-4 * before.abs().max().item())
    importance = net.blocks[0].project.conv.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])
    perm = perms["blocks.0"]
    torch.testing.assert_close(opt.state[net.blocks[0].project.conv.weight]["momentum_buffer"],
                               momentum[:, perm])


def test_set_active_rejects_architectures_of_other_spaces(supernet_name):
    net = make_supernet(supernet_name)
    arch = net.space.max()
    bad = arch.__class__(arch.resolution + 1, arch.depths, arch.kernel_sizes, arch.expand_ratios)
    with pytest.raises(InvalidArchitectureError, match="resolution"):
        net.set_active(bad)
    with pytest.raises(InvalidArchitectureError, match="stages"):
        net.set_active(arch.__class__(arch.resolution, arch.depths[:-1], arch.kernel_sizes[:-net.space.max_depth],
                                      arch.expand_ratios[:-net.space.max_depth]))


def test_encoding_round_trip_over_random_architectures(supernet_name):
    net = make_supernet(supernet_name)
    space = net.space
    archs = space.sample(np.random.default_rng(5), n=50)
    genes = space.encode(archs)
    assert genes.shape == (50, len(space.encoding_upper_bounds))
    assert space.decode(genes) == archs
