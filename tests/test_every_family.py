"""What runs on architecture descriptions (latency tables, encoders, every search algorithm) works on
every registered supernet, through the seam alone."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from elasticnas.hardware import LatencyTable, count_all, layer_cost
from elasticnas.hardware.lookup import layer_key
from elasticnas.predictors import ArchEncoder
from elasticnas.search import Objective, cost_objective, list_algorithms, run_search, table_latency_objective
from elasticnas.supernet import create_space, list_supernets

SPACES = {name: create_space(name, num_classes=10) for name in list_supernets()}
EVERY_SPACE = pytest.mark.parametrize("name", sorted(SPACES))


def _synthetic_table(space, resolutions) -> LatencyTable:
    layers = LatencyTable.layers_to_measure(space, resolutions)
    entries = pd.DataFrame({"layer": [layer_key(s) for s in layers],
                            "latency_ms": [0.01 + 1e-7 * layer_cost(s).macs for s in layers]})
    metadata = {"statistic": "latency_ms", "call_overhead_ms": 0.004, "space_fingerprint": space.fingerprint,
                "space_name": space.name, "resolutions": list(resolutions), "batch_size": 1, "device": "cpu",
                "runtime": "torch"}
    return LatencyTable(space, entries, metadata)


@EVERY_SPACE
def test_table_prediction_is_the_sum_of_each_subnets_own_layers(name):
    space = SPACES[name]
    resolutions = space.resolutions[:2]
    table = _synthetic_table(space, resolutions)
    by_key = dict(zip(table.entries["layer"], table.entries["latency_ms"], strict=True))
    archs = [a for a in space.sample(np.random.default_rng(1), n=60) if a.resolution in resolutions][:15]
    archs.append(dataclasses.replace(space.min(), resolution=resolutions[0]))
    for arch, value in zip(archs, table.predict(archs), strict=True):
        layers = space.layers(arch)
        expected = sum(by_key[layer_key(s)] for s in layers) - (len(layers) - 1) * 0.004
        assert value == pytest.approx(expected, rel=1e-12)
    value, cheapest, exact = table.cheapest()
    assert exact and value <= table.predict(archs).min() + 1e-12


@EVERY_SPACE
def test_encoders_give_equal_vectors_to_equal_networks_and_zeros_to_inactive_genes(name):
    space = SPACES[name]
    archs = space.sample(np.random.default_rng(2), n=30)
    for kind in ("onehot", "ordinal"):
        encoder = ArchEncoder(space, kind).fit()
        features = encoder.transform(archs)
        assert features.shape == (30, len(encoder.get_feature_names_out()))
        assert np.array_equal(features, encoder.transform([a.to_json() for a in archs]))
        assert len({row.tobytes() for row in features}) == len(set(archs))
    ordinal = ArchEncoder(space, "ordinal").fit().transform(archs)
    active = space.active_mask(space.encode(archs))
    assert (ordinal[~active] == 0).all() and (ordinal[active] > 0).all()


@EVERY_SPACE
@pytest.mark.parametrize("algorithm", list_algorithms())
def test_every_algorithm_searches_every_space(name, algorithm):
    space = SPACES[name]
    macs = cost_objective(space, "macs")
    params = Objective("params", lambda archs: count_all(space, archs)["params"].astype(float), maximize=True)
    result = run_search(space, [params, macs], algorithm=algorithm, n_evals=40, seed=0, pop_size=10)
    assert len(result.archive) == 40 and len(result.front) >= 1
    assert len({space.canonical(a) for a in result.archive["arch"]}) == 40
    if algorithm == "nsga2":  # a latency budget as a constraint, on one resolution
        one = dataclasses.replace(space, resolutions=space.resolutions[:1])
        table = _synthetic_table(one, one.resolutions)
        budget = float(np.median(table.predict(one.sample(0, n=50))))
        params = Objective("params", lambda archs: count_all(one, archs)["params"].astype(float), maximize=True)
        feasible = run_search(one, [params, table_latency_objective(table)], n_evals=40, seed=0, pop_size=10,
                              constraints=[f"latency_ms <= {budget}"])
        assert len(feasible.front) and (feasible.front["latency_ms"] <= budget + 1e-9).all()
