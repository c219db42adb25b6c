"""Conformance suite: every registered supernet, of every family, must pass all of these.

Nothing here names a family: the tests reach a supernet only through the seam (its space's
genes and layer list, ``forward``, ``active_state_dict``, ``extract``, ``reorder_channels``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from elasticnas.hardware import count_all, count_macs, count_params, model_size_bytes
from elasticnas.supernet import InvalidArchitectureError, reorder_channels
from tests.conftest import hook_counts, make_supernet


def _archs(space, n_random=2, seed=0):
    return [space.max(), space.min(), *space.sample(seed, n=n_random)]


def _input(space, arch, batch=2, seed=0):
    return space.example_input(arch, batch, torch.Generator().manual_seed(seed))


def _at_resolution(space, arch, resolution):
    return dataclasses.replace(arch, resolution=resolution)


def test_forward_min_max_random_shapes_and_finite(supernet_name):
    net = make_supernet(supernet_name).eval()
    for arch in _archs(net.space):
        net.set_active(arch)
        out = net(_input(net.space, arch))
        assert out.shape == (2, *net.space.output_shape(arch))
        assert torch.isfinite(out).all()


def test_different_architectures_give_different_outputs(supernet_name):
    net = make_supernet(supernet_name).eval()
    space = net.space
    x = _input(space, space.max())
    small = _at_resolution(space, space.min(), space.max().resolution)
    assert not torch.allclose(net(x, space.max()), net(x, small))


def test_extracted_model_matches_supernet_in_eval(supernet_name):
    net = make_supernet(supernet_name).eval()
    for arch in _archs(net.space, n_random=3, seed=1):
        x = _input(net.space, arch)
        static = net.extract(arch).eval()
        expected = net(x, arch)
        torch.testing.assert_close(static(x), expected, rtol=0, atol=1e-5 * max(1.0, expected.abs().max().item()))


def test_extracted_model_exports_as_a_torch_export_program_with_a_free_batch(supernet_name):
    from elasticnas.export import export_program

    net = make_supernet(supernet_name).eval()
    arch = net.space.sample(3)
    model = net.extract(arch).eval()
    program = export_program(model, _input(net.space, arch, batch=2))
    x = _input(net.space, arch, batch=3, seed=1)
    with torch.no_grad():
        expected = model(x)
        scale = max(1.0, expected.abs().max().item())
        assert (program.module()(x) - expected).abs().max() <= 1e-4 * scale  # float32 reordering only


def test_extracted_model_is_plain_torch_and_independent(supernet_name):
    net = make_supernet(supernet_name)
    arch = net.space.sample(3)
    static = net.extract(arch)
    for module in static.modules():
        origin = type(module).__module__
        assert origin.startswith("torch.nn") or origin.startswith("elasticnas."), origin
        assert "Elastic" not in type(module).__name__, type(module)
    supernet_ptrs = {t.data_ptr() for t in [*net.parameters(), *net.buffers()]}
    assert not {t.data_ptr() for t in [*static.parameters(), *static.buffers()]} & supernet_ptrs
    before = {k: v.clone() for k, v in static.state_dict().items()}
    with torch.no_grad():
        for param in net.parameters():
            param.add_(1.0)
    for name, value in static.state_dict().items():
        torch.testing.assert_close(value, before[name])


def _active_masks(net, arch) -> dict[str, torch.Tensor]:
    """For each supernet tensor that the subnet reads as a view, which of its elements it reads."""
    owners = {t.data_ptr(): (name, t) for name, t in [*net.named_parameters(), *net.named_buffers()]}
    masks = {}
    for value in net.active_state_dict(arch).values():
        base = value._base if value._base is not None else value
        if base.data_ptr() not in owners or not value.is_floating_point():
            continue
        name, tensor = owners[base.data_ptr()]
        mask = masks.setdefault(name, torch.zeros_like(tensor, dtype=torch.bool))
        offset = value.storage_offset() - tensor.storage_offset()
        mask.as_strided(value.shape, value.stride(), offset).fill_(True)
    return masks


def test_training_touches_only_the_active_slices(supernet_name):
    """Gradients and BN running statistics change inside the subnet's slices of the shared
    tensors and nowhere else (a family without batch norm has no statistics to check)."""
    net = make_supernet(supernet_name).train()
    arch = net.space.min()
    masks = _active_masks(net, arch)
    assert any(not mask.all() for mask in masks.values()), "the min subnet should use part of some tensor"
    before = {name: t.clone() for name, t in net.named_buffers()}
    net(_input(net.space, arch, batch=4), arch).sum().backward()
    for name, param in net.named_parameters():
        if name in masks and param.grad is not None:
            assert param.grad[~masks[name]].abs().sum() == 0, name
    changed = False
    for name, buffer in net.named_buffers():
        if name in masks and "running" in name:
            torch.testing.assert_close(buffer[~masks[name]], before[name][~masks[name]])
            changed |= not torch.equal(buffer[masks[name]], before[name][masks[name]])
    assert changed or not any("running" in name for name in masks)


def test_analytic_counts_equal_hook_counts(supernet_name):
    net = make_supernet(supernet_name)
    space = net.space
    archs = _archs(space, n_random=3, seed=2)
    table = count_all(space, archs)
    for i, arch in enumerate(archs):
        static = net.extract(arch)
        params, macs = hook_counts(static, _input(space, arch, batch=1))
        assert count_params(space, arch) == params == table["params"][i]
        assert count_macs(space, arch) == macs == table["macs"][i]
        state_bytes = sum(t.numel() * t.element_size() for k, t in static.state_dict().items()
                          if t.is_floating_point())
        assert model_size_bytes(space, arch) == state_bytes == table["size_bytes"][i]


def test_channel_reordering_keeps_the_function_and_is_idempotent(supernet_name):
    net = make_supernet(supernet_name).eval()
    arch = net.space.max()
    x = _input(net.space, arch)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(x, arch).sum().backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)  # deep random nets have huge gradients
    opt.step()
    before = net(x, arch)
    assert torch.isfinite(before).all()
    perms = reorder_channels(net, opt)
    identity = lambda p: torch.equal(p, torch.arange(p.shape[-1]).expand_as(p))  # noqa: E731
    assert perms and not all(identity(p) for p in perms.values())
    torch.testing.assert_close(net(x, arch), before, rtol=1e-4, atol=1e-4 * before.abs().max().item())
    again = reorder_channels(net, opt)
    assert all(identity(p) for p in again.values())


def test_set_active_rejects_architectures_outside_the_space(supernet_name):
    net = make_supernet(supernet_name)
    arch = net.space.max()
    with pytest.raises(InvalidArchitectureError, match="resolution"):
        net.set_active(_at_resolution(net.space, arch, max(net.space.resolutions) + 1))
    with pytest.raises(InvalidArchitectureError, match="expected"):
        net.set_active(object())


def test_encoding_round_trip_and_canonical_forms(supernet_name):
    space = make_supernet(supernet_name).space
    archs = space.sample(np.random.default_rng(5), n=50)
    genes = space.encode(archs)
    assert genes.shape == (50, len(space.encoding_upper_bounds))
    assert space.decode(genes) == archs
    assert (space.canonical_genes(genes) == genes).all()
    for arch in archs[:10]:
        assert space.canonical(arch.to_json()) == arch
        foreign = space.to_foreign_dict(arch)
        if foreign is not None:
            assert space.from_dict(foreign) == arch


def test_random_gene_vectors_decode_to_valid_canonical_archs(supernet_name):
    space = make_supernet(supernet_name).space
    rng = np.random.default_rng(0)
    upper = space.encoding_upper_bounds
    raw = rng.integers(0, upper + 1, size=(200, len(upper)))
    archs = space.decode(raw)
    assert (space.encode(archs) == space.canonical_genes(raw)).all()
    assert len(set(archs)) == len({row.tobytes() for row in space.canonical_genes(raw)})
