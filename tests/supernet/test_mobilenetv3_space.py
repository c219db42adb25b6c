from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elasticnas.supernet import (
    ConfigError,
    InvalidArchitectureError,
    UnknownNameError,
    create_space,
    create_supernet,
    list_supernets,
)
from elasticnas.supernet.families.mobilenetv3 import MobileNetV3Arch as Arch

SPACES = {name: space for name in list_supernets()
          if (space := create_space(name, num_classes=10)).family == "mobilenetv3"}


@st.composite
def genotypes(draw, space):
    """Any genotype of the space, dead genes included (any choice value)."""
    res = draw(st.sampled_from(space.resolutions))
    depths = draw(st.lists(st.sampled_from(space.depth_choices), min_size=space.num_stages,
                           max_size=space.num_stages))
    ks = draw(st.lists(st.sampled_from(space.kernel_choices), min_size=space.num_slots, max_size=space.num_slots))
    es = draw(st.lists(st.sampled_from(space.expand_choices), min_size=space.num_slots, max_size=space.num_slots))
    return res, depths, ks, es


@pytest.mark.parametrize("name", sorted(SPACES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_json_and_ofa_dict_round_trip(name, data):
    space = SPACES[name]
    arch = Arch(*data.draw(genotypes(space)))
    assert Arch.from_json(arch.to_json()) == arch
    assert space.from_dict(json.loads(json.dumps(arch.to_dict(style="ofa")))) == arch
    assert space.canonical(arch.to_json()) == arch
    assert space.decode(space.encode(arch)) == arch
    hash(arch)


@pytest.mark.parametrize("name", sorted(SPACES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_dead_genes_do_not_matter(name, data):
    space = SPACES[name]
    res, depths, ks, es = data.draw(genotypes(space))
    other_ks, other_es = list(ks), list(es)
    for stage, depth in enumerate(depths):
        for block in range(depth, space.max_depth):
            slot = space.slot_index(stage, block)
            other_ks[slot] = data.draw(st.sampled_from(space.kernel_choices))
            other_es[slot] = data.draw(st.sampled_from(space.expand_choices))
    a, b = Arch(res, depths, ks, es), Arch(res, depths, other_ks, other_es)
    assert a == b and hash(a) == hash(b) and a.to_json() == b.to_json()
    assert (space.encode(a) == space.encode(b)).all()


def test_active_genes_do_matter():
    space = SPACES["tiny_mbv3"]
    a = space.max()
    ks = list(a.kernel_sizes)
    ks[0] = 3
    assert Arch(a.resolution, a.depths, ks, a.expand_ratios) != a


def test_inactive_genes_are_zero_and_ofa_form_is_filled():
    arch = Arch(224, (2, 3), (3, 5, 7, 7, 5, 5, 3, 7), (4, 6, 3, 3, 3, 4, 6, 6))
    assert arch.kernel_sizes == (3, 5, 0, 0, 5, 5, 3, 0)
    assert arch.to_dict("ofa") == {"ks": [3, 5, 5, 5, 5, 5, 3, 3], "e": [4, 6, 6, 6, 3, 4, 6, 6],
                                   "d": [2, 3], "r": [224]}


def test_ofa_and_dynast_dicts_are_accepted():
    space = SPACES["ofa_mbv3_w10"]
    dynast = {"wid": None, "ks": [5, 7, 5, 5, 3, 3, 3, 7, 5, 5, 3, 7, 7, 3, 3, 3, 5, 5, 5, 5],
              "e": [4, 3, 4, 4, 4, 6, 3, 4, 4, 3, 4, 3, 3, 6, 6, 6, 4, 3, 4, 4], "d": [2, 3, 2, 4, 3], "r": [224]}
    arch = space.from_dict(dynast)
    assert arch.depths == (2, 3, 2, 4, 3) and arch.resolution == 224
    assert space.from_dict({**dynast, "r": 224}) == arch
    no_r = {k: v for k, v in dynast.items() if k != "r"}
    assert space.from_dict(no_r).resolution == max(space.resolutions)
    with pytest.raises(InvalidArchitectureError, match="wid"):
        space.from_dict({**dynast, "wid": [1.0]})
    with pytest.raises(InvalidArchitectureError, match="unknown"):
        space.from_dict({**dynast, "foo": 1})


@pytest.mark.parametrize(
    ("change", "field", "allowed"),
    [
        ({"resolution": 100}, "resolution=100", "[128"),
        ({"depths": [2, 3, 2, 1, 3]}, r"depths\[3\]=1", "[2, 3, 4]"),
        ({"kernel_sizes": [9] + [3] * 19}, r"kernel_sizes\[0\]=9", "[3, 5, 7]"),
        ({"expand_ratios": [4] * 4 + [5] + [4] * 15}, r"expand_ratios\[4\]=5", "[3, 4, 6]"),
    ],
)
def test_validation_names_field_value_and_allowed_values(change, field, allowed):
    space = SPACES["ofa_mbv3_w10"]
    data = {**space.max().to_dict(), **change}
    with pytest.raises(InvalidArchitectureError) as info:
        space.from_dict(data)
    message = str(info.value)
    assert re.search(field, message) and allowed in message, message


def test_malformed_architectures_are_rejected_clearly():
    with pytest.raises(InvalidArchitectureError, match="one entry per block slot"):
        Arch(32, (1,), (3, 3), (3,))
    with pytest.raises(InvalidArchitectureError, match="integers"):
        Arch(32.5, (1,), (3,), (3,))
    with pytest.raises(InvalidArchitectureError, match="list"):
        Arch(32, "12", (3,), (3,))
    with pytest.raises(InvalidArchitectureError, match="parse"):
        Arch.from_json("{nope")
    with pytest.raises(InvalidArchitectureError, match="lacks"):
        Arch.from_dict({"depths": [1]})
    with pytest.raises(InvalidArchitectureError, match="outside"):
        SPACES["tiny_mbv3"].decode(np.full(len(SPACES["tiny_mbv3"].encoding_upper_bounds), 99))


def test_size_counts_distinct_canonical_subnets_exactly():
    space = create_space("tiny_mbv3", num_classes=10, resolutions=(28,), depth_choices=(1, 2),
                         kernel_choices=(3, 5), expand_choices=(2, 4), stage_channels=(16, 24),
                         stage_strides=(1, 2), stage_activations=("relu", "hswish"), stage_se=(False, True))
    distinct = set()
    upper = space.encoding_upper_bounds
    for genes in itertools.product(*(range(u + 1) for u in upper)):
        distinct.add(space.decode(np.array(genes)))
    assert space.size == len(distinct) == (4 + 16) ** 2
    ofa = SPACES["ofa_mbv3_w10"]
    assert ofa.size == 25 * (81 + 729 + 6561) ** 5
    assert isinstance(ofa.size, int)


def test_sample_is_seeded_and_valid():
    space = SPACES["ofa_mbv3_w10"]
    assert space.sample(7, n=5) == space.sample(7, n=5)
    assert space.sample(7, n=5) != space.sample(8, n=5)
    for arch in space.sample(np.random.default_rng(0), n=100):
        space.validate(arch)
    assert space.min() != space.max()


def test_registry_errors_list_valid_names_and_fields():
    with pytest.raises(UnknownNameError, match="ofa_mbv3_w10"):
        create_supernet("resnet9000", num_classes=10)
    with pytest.raises(ConfigError, match="kernel_choices"):
        create_space("tiny_mbv3", num_classes=10, kernel_size=3)
    with pytest.raises(ConfigError, match="duplicate middle widths"):
        create_space("tiny_mbv3", num_classes=10, expand_choices=(2, 2.1))
    assert list_supernets("ofa_mbv3_*") == ["ofa_mbv3_w10", "ofa_mbv3_w12"]


def test_space_fingerprint_and_config_round_trip():
    a = create_space("tiny_mbv3", num_classes=10)
    assert type(a).from_config(a.to_config()) == a
    assert a.fingerprint == create_space("tiny_mbv3", num_classes=10).fingerprint
    assert a.fingerprint != create_space("tiny_mbv3", num_classes=11).fingerprint


def test_ofa_w12_widths_follow_ofa_rounding():
    space = SPACES["ofa_mbv3_w12"]
    assert (space.stem_channels, space.first_block_channels) == (24, 24)
    assert space.stage_channels == (32, 48, 96, 136, 192)
    assert (space.final_expand_channels, space.feature_mix_channels) == (1152, 1536)
