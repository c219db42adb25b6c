"""The decoder family beyond the conformance suite: exact sizes of the GPT-2 and Llama presets, the KV
cache, generation, ``transformers``' own arithmetic, and the space's refusals.

The conformance suite already holds every decoder preset to the seam (extraction equality without
a cache, analytic counts equal to torch's FLOP counter, re-ordering, torch.export, encodings).
"""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch

from elasticnas.hardware import count_params
from elasticnas.supernet import ConfigError, InvalidArchitectureError, create_space, create_supernet
from elasticnas.supernet.families.decoder import KVCache, generate
from elasticnas.supernet.families.decoder.transformers_format import to_transformers, transformers_config
from tests.conftest import randomise_

HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
needs_transformers = pytest.mark.skipif(not HAS_TRANSFORMERS, reason='needs transformers: pip install -e ".[models]"')

# Small spaces in each layout, random weights: GPT-2 (multi-head, learned positions, biases, untied head
# in one of them) and Llama (grouped-query attention in groups of 2, rotary positions, SwiGLU, RMSNorm).
SMALL = {"gpt2": dict(embed_choices=(64, 96), depth_choices=(2, 3), head_choices=(1, 2, 3), mlp_choices=(64, 128),
                      head_dim=32, resolutions=(16, 24), max_positions=48),
         "gpt2_untied": dict(embed_choices=(64, 96), depth_choices=(2, 3), head_choices=(1, 3), mlp_choices=(64, 128),
                             head_dim=32, resolutions=(16, 24), max_positions=48, tie_embeddings=False),
         "llama": dict(embed_choices=(48, 96), depth_choices=(2, 3), head_choices=(2, 4, 6), mlp_choices=(64, 160),
                       head_dim=16, kv_group=2, resolutions=(16, 24))}
PRESET = {"gpt2": "gpt2_small", "gpt2_untied": "gpt2_small", "llama": "smollm_135m"}
VOCAB = 97


def small_supernet(layout: str, seed: int = 0):
    net = create_supernet(PRESET[layout], num_classes=VOCAB, **SMALL[layout])
    randomise_(net, seed)
    return net.eval()


def archs(space, n=3, seed=0):
    return [space.max(), space.min(), *space.sample(seed, n=n)]


def scale_of(t: torch.Tensor) -> float:
    return max(1.0, t.abs().max().item())


def test_gpt2_small_and_smollm_count_exactly_as_transformers_does():
    """GPT-2 small: 50,257 x 768 tokens + 1,024 x 768 positions + 12 x 7,087,872 per layer + 1,536 for the
    final norm = 124,439,808. SmolLM-135M: 49,152 x 576 tokens + 30 x 3,540,096 per layer + 576 = 134,515,008."""
    gpt2, smollm = create_space("gpt2_small", num_classes=50257), create_space("smollm_135m", num_classes=49152)
    assert count_params(gpt2, gpt2.max()) == 50257 * 768 + 1024 * 768 + 12 * 7_087_872 + 1536 == 124_439_808
    assert count_params(smollm, smollm.max()) == 49152 * 576 + 30 * 3_540_096 + 576 == 134_515_008


@needs_transformers
@pytest.mark.parametrize("name, vocab", [("gpt2_small", 50257), ("smollm_135m", 49152)])
def test_largest_subnets_are_the_transformers_models_of_the_same_size(name, vocab):
    import transformers

    space = create_space(name, num_classes=vocab)
    config = transformers_config(space, space.max())
    with torch.device("meta"):  # shapes only: nothing is allocated or initialised
        model = getattr(transformers, config["architectures"][0])(
            transformers.AutoConfig.for_model(**{k: v for k, v in config.items() if k != "architectures"}))
    assert sum(p.numel() for p in model.parameters()) == count_params(space, space.max())


@pytest.mark.parametrize("layout", sorted(SMALL))
def test_logits_with_a_kv_cache_equal_logits_without_one(layout):
    """Prefill a prompt, then feed the rest one token and then two tokens at a time: the logits equal one
    pass over the whole sequence (up to float32 reordering of the different matrix shapes), in the
    supernet and in the extracted model alike, which agree with each other exactly."""
    net = small_supernet(layout)
    tokens = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(1))
    for arch in archs(net.space):
        full = net(tokens, arch)
        static = net.extract(arch).eval()
        torch.testing.assert_close(static(tokens), full, rtol=0, atol=0)
        for model in (lambda x, c, a=arch: net(x, a, c), static):
            cache, pieces = KVCache(), []
            for start, stop in ((0, 9), (9, 10), (10, 12), (12, 13), (13, 16)):
                pieces.append(model(tokens[:, start:stop], cache))
            assert cache.length == 16 and len(cache.keys) == arch.depth
            stepped = torch.cat(pieces, dim=1)
            assert (stepped - full).abs().max() <= 1e-5 * scale_of(full)  # float32 reordering only


@pytest.mark.parametrize("layout", ["gpt2", "llama"])
def test_greedy_generation_equals_rerunning_the_whole_sequence(layout):
    net = small_supernet(layout)
    arch = net.space.sample(4)
    model = net.extract(arch).eval()
    prompt = torch.randint(0, VOCAB, (2, 5), generator=torch.Generator().manual_seed(2))
    generated = generate(model, prompt, 10, temperature=0)
    expected = prompt
    with torch.no_grad():
        for _ in range(10):
            expected = torch.cat([expected, model(expected)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(generated, expected)
    sampled = generate(lambda x, c: net(x, arch, c), prompt, 6, top_k=5, generator=torch.Generator().manual_seed(0))
    assert sampled.shape == (2, 11) and torch.equal(sampled[:, :5], prompt)


def test_a_sequence_longer_than_the_position_table_is_refused_with_the_limit():
    net = small_supernet("gpt2")
    with pytest.raises(ValueError, match="48 positions"):
        net(torch.zeros(1, 49, dtype=torch.long))
    model = net.extract(net.space.min())
    with pytest.raises(ValueError, match="40 cached"):
        cache = KVCache()
        model(torch.zeros(1, 40, dtype=torch.long), cache)
        model(torch.zeros(1, 9, dtype=torch.long), cache)


def test_weight_reordering_keeps_grouped_query_heads_together():
    """Sorting key/value groups must move each group's query heads with it: the full network's function stays."""
    net = small_supernet("llama")
    tokens = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(3))
    before, smallest = net(tokens, net.space.max()), net(tokens, net.space.min())
    block = net.blocks[0]
    block.permute_units(torch.tensor([2, 0, 1]), torch.randperm(160, generator=torch.Generator().manual_seed(0)))
    after = net(tokens, net.space.max())
    assert (after - before).abs().max() <= 1e-5 * scale_of(before)
    assert not torch.allclose(net(tokens, net.space.min()), smallest)  # smaller subnets now read other units


@needs_transformers
@pytest.mark.parametrize("layout", sorted(SMALL))
def test_homogeneous_subnets_give_transformers_logits(layout):
    import transformers

    net = small_supernet(layout)
    space, arch = net.space, net.space.sample(5)
    heads = space.head_choices[-1] if layout == "gpt2" else space.head_choices[1]
    embed = heads * space.head_dim if layout.startswith("gpt2") else space.embed_choices[-1]
    arch = space.canonical(dataclasses.replace(arch, embed_dim=embed, num_heads=(heads,) * space.max_depth,
                                               mlp_hidden=(space.mlp_choices[0],) * space.max_depth))
    config, state = to_transformers(space, arch, net.extract(arch).state_dict())
    model = getattr(transformers, config["architectures"][0])(
        transformers.AutoConfig.for_model(**{k: v for k, v in config.items() if k != "architectures"})).eval()
    result = model.load_state_dict(state, strict=False)
    tied_head = {"lm_head.weight"} if space.tie_embeddings else set()  # transformers ties it to the embeddings
    assert not result.unexpected_keys and set(result.missing_keys) == tied_head
    tokens = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        theirs, ours = model(tokens).logits, net(tokens, arch)
    assert (theirs - ours).abs().max() <= 1e-5 * scale_of(ours)  # the same arithmetic, reordered


def test_heterogeneous_subnets_and_other_layouts_are_refused_for_transformers():
    net = small_supernet("gpt2")
    arch = net.space.canonical(dataclasses.replace(net.space.max(), num_heads=(1, 3, 3)))
    with pytest.raises(InvalidArchitectureError, match="one head count"):
        transformers_config(net.space, arch)
    odd = create_space("gpt2_small", num_classes=VOCAB, **{**SMALL["gpt2"], "mlp": "swiglu"})
    with pytest.raises(InvalidArchitectureError, match="neither GPT-2"):
        transformers_config(odd, odd.max())


@pytest.mark.parametrize("change, message", [
    (dict(kv_group=2, head_choices=(2, 3)), "multiples of kv_group=2"),
    (dict(norm="batchnorm"), "norm='batchnorm' is not known"),
    (dict(positions="rope", head_dim=33), "even head_dim"),
    (dict(max_positions=20), "max_positions=20 is shorter than the longest context 24"),
])
def test_spaces_that_cannot_be_built_are_refused_naming_the_field(change, message):
    with pytest.raises(ConfigError, match=message):
        create_space("gpt2_small", num_classes=VOCAB, **{**SMALL["gpt2"], **change})


@pytest.mark.parametrize("layout", ["gpt2", "llama"])
def test_activation_ordering_puts_important_units_first_and_keeps_the_largest_subnet(layout):
    from elasticnas.supernet.families.decoder.importance import activation_importance, reorder_by_activations

    net = small_supernet(layout)
    calibration = torch.randint(0, VOCAB, (6, 16), generator=torch.Generator().manual_seed(7))
    tokens = calibration[:2]
    largest, smallest = net(tokens, net.space.max()), net(tokens, net.space.min())
    orders = reorder_by_activations(net, calibration, batch_size=4)
    assert any(not torch.equal(o, torch.arange(len(o))) for pair in orders for o in pair)
    assert (net(tokens, net.space.max()) - largest).abs().max() <= 1e-5 * scale_of(largest)
    assert not torch.allclose(net(tokens, net.space.min()), smallest)
    for heads, units in activation_importance(net, calibration):
        assert (heads[:-1] >= heads[1:]).all() and (units[:-1] >= units[1:]).all()
    again = reorder_by_activations(net, calibration)
    assert all(torch.equal(o, torch.arange(len(o))) for pair in again for o in pair)


def test_memory_is_weights_plus_the_kv_cache_exactly():
    """GPT-2 small at 1,024 tokens: 12 layers x (key + value) x 768 x 1,024 x 4 bytes = 75,497,472 of cache
    beside 124,439,808 x 4 bytes of weights; a grouped-query subnet caches one key/value head per group."""
    from elasticnas.hardware import inference_memory_bytes, kv_cache_bytes

    gpt2 = create_space("gpt2_small", num_classes=50257)
    assert kv_cache_bytes(gpt2, gpt2.max(), 1024) == 12 * 2 * 768 * 1024 * 4 == 75_497_472
    assert inference_memory_bytes(gpt2, gpt2.max()) == 124_439_808 * 4 + 75_497_472
    assert kv_cache_bytes(gpt2, gpt2.max(), 512, batch_size=3) == 3 * 75_497_472 // 2
    net = small_supernet("llama")
    for arch in archs(net.space):
        cache = KVCache()
        net(torch.zeros(2, 13, dtype=torch.long), arch, cache)
        assert kv_cache_bytes(net.space, arch, 13, batch_size=2) == cache.nbytes()


@pytest.mark.parametrize("layout", ["gpt2", "llama"])
def test_the_decode_phase_costs_one_token_over_a_filled_cache(layout):
    """Per generated token at context n: every matrix product on one token and attention over n keys
    (n - 1 cached and its own), so n decoding steps cost what the prefill of n tokens does (which
    counts the whole causal square); torch's FLOP counter on the timed decoding step agrees."""
    from elasticnas.hardware import count_macs
    from tests.conftest import hook_counts

    prefill = small_supernet(layout).space
    decode = prefill.in_phase("decode")
    assert decode.fingerprint != prefill.fingerprint and decode.genes == prefill.genes
    for arch in archs(prefill):
        assert count_params(decode, arch) == count_params(prefill, arch)
        assert count_macs(prefill, arch) == arch.resolution * count_macs(decode, arch)
        step = decode.timing_model(arch).eval()
        tokens = decode.example_input(arch, 2)
        assert tokens.shape == (2, 1) and step(tokens).shape == (2, *decode.output_shape(arch))
        assert hook_counts(step, decode.example_input(arch))[1] == count_macs(decode, arch)


def test_a_decoding_step_continues_the_tokens_its_cache_was_filled_with():
    net = small_supernet("llama")
    decode = net.space.in_phase("decode")
    arch = decode.sample(6)
    model = decode.timing_model(arch).model  # a fresh static model: give it the supernet's weights,
    model.load_state_dict(net.extract(arch).state_dict())
    step = type(decode.timing_model(arch))(model, arch.resolution - 1, VOCAB).eval()  # then fill the cache
    filled = torch.randint(0, VOCAB, (1, arch.resolution - 1), generator=torch.Generator().manual_seed(0))
    new = torch.tensor([[5]])
    expected = net(torch.cat([filled, new], dim=1), arch)[:, -1:]
    assert (step(new) - expected).abs().max() <= 1e-5 * scale_of(expected)


@pytest.mark.parametrize("phase, runtime", [("prefill", "torch"), ("decode", "torch"), ("decode", "onnxruntime")])
def test_latency_tables_time_each_phase_on_token_inputs(phase, runtime):
    """Token ids into the embedding, a filled cache under each decoding layer, a tied head with a matrix
    of its own; structure only (no timing relation: a loaded machine may reorder tiny layers)."""
    from elasticnas.hardware import LatencyTable, measure_archs

    space = create_space("tiny_gpt", num_classes=256, resolutions=(16, 32), depth_choices=(1, 2),
                         embed_choices=(32, 64), head_choices=(1, 2), mlp_choices=(32, 64), head_dim=16)
    space = space.in_phase(phase)
    table = LatencyTable.build(space, runtime=runtime, warmup=0, repeats=2, rounds=1, progress=False, calibrate=2)
    assert len(table.entries) == len(LatencyTable.layers_to_measure(space, space.resolutions))
    assert (table.entries["latency_ms"] > 0).all()
    subnets = space.sample(1, n=3)
    assert (table.predict(subnets) > 0).all()
    assert (measure_archs(space, subnets, runtime=runtime, warmup=0, repeats=2, rounds=1) > 0).all()


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_counted_memory_is_weights_plus_cache_for_whole_populations(phase):
    from elasticnas.hardware import count_all, inference_memory_bytes, kv_cache_bytes

    space = small_supernet("llama").space.in_phase(phase)
    subnets = archs(space, n=6)
    counted = count_all(space, subnets)
    assert counted["memory_bytes"].tolist() == [inference_memory_bytes(space, a) for a in subnets]
    assert counted["kv_cache_bytes"].tolist() == [kv_cache_bytes(space, a, a.resolution) for a in subnets]
    image = create_space("tiny_mbv3", num_classes=10)
    assert (count_all(image, image.sample(0, n=3))["kv_cache_bytes"] == 0).all()


def test_a_memory_cap_keeps_the_search_within_it():
    from elasticnas.hardware import count_all
    from elasticnas.search import Constraint, Objective, cost_objective, run_search

    space = small_supernet("gpt2").space
    memory = count_all(space, space.sample(0, n=200))["memory_bytes"]
    cap = float(np.quantile(memory, 0.3))
    params = Objective("params", lambda a: count_all(space, a)["params"].astype(float), maximize=True,
                       source="counted")
    result = run_search(space, [params, cost_objective(space, "macs")], n_evals=300, seed=0, pop_size=20,
                        constraints=[Constraint(cost_objective(space, "memory_bytes"), cap)])
    front = [space.canonical(a) for a in result.front["arch"]]
    assert front and (count_all(space, front)["memory_bytes"] <= cap).all()
    assert count_all(space, [space.max()])["memory_bytes"][0] > cap  # the cap binds


@needs_transformers
@pytest.mark.parametrize("layout", ["gpt2", "llama"])
def test_an_export_of_a_homogeneous_subnet_is_also_a_transformers_folder(layout, tmp_path):
    import transformers

    from elasticnas.core.run_layout import TRANSFORMERS_FOLDER
    from elasticnas.export import export_subnet

    net = small_supernet(layout)
    space = net.space
    heads = space.head_choices[-1]
    embed = heads * space.head_dim if layout == "gpt2" else space.embed_choices[-1]
    uniform = space.canonical(dataclasses.replace(space.max(), embed_dim=embed, num_heads=(heads,) * space.max_depth,
                                                  mlp_hidden=(space.mlp_choices[0],) * space.max_depth))
    written = export_subnet(net.extract(uniform), space, uniform, tmp_path / "uniform", formats="safetensors,onnx")
    assert any(name.startswith(TRANSFORMERS_FOLDER) for name in written["files"])
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "uniform" / TRANSFORMERS_FOLDER).eval()
    tokens = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        ours = net(tokens, uniform)
        assert (model(tokens).logits - ours).abs().max() <= 1e-5 * scale_of(ours)
    mixed = space.canonical(dataclasses.replace(uniform, mlp_hidden=(space.mlp_choices[0], space.mlp_choices[-1],
                                                                     space.mlp_choices[0])))
    export_subnet(net.extract(mixed), space, mixed, tmp_path / "mixed", formats="safetensors")
    assert not (tmp_path / "mixed" / TRANSFORMERS_FOLDER).exists()


def test_a_decoder_times_two_phases_and_refuses_a_third():
    space = create_space("tiny_gpt", num_classes=256)
    assert space.phases == ("prefill", "decode") and space.in_phase("prefill").phase == "prefill"
    assert space.in_phase("decode").fingerprint != space.in_phase("prefill").fingerprint
    with pytest.raises(ConfigError, match="'training' is not known; choose one of \\['prefill', 'decode'\\]"):
        space.in_phase("training")
    image = create_space("tiny_mbv3", num_classes=10)
    assert image.phases == ()
    with pytest.raises(ConfigError, match="no phase 'prefill'"):
        image.in_phase("prefill")
