from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from elasticnas.hardware import LatencyTable
from elasticnas.search import (
    InfeasibleBudgetError,
    Objective,
    canonical_genes,
    cost_objective,
    list_algorithms,
    run_guided_search,
    run_search,
    table_latency_objective,
)
from elasticnas.supernet import ConfigError, UnknownNameError, create_space

SPACE = create_space("tiny_mbv3", num_classes=10, in_channels=1)


def _score(archs):
    """A deterministic stand-in for accuracy: saturating in capacity, with a kernel preference."""
    values = []
    for a in archs:
        capacity = a.resolution / 8 + sum(a.depths) + sum(e for e in a.expand_ratios) / 4
        values.append(100 - 30 * np.exp(-capacity / 6) + 0.1 * sum(k == 5 for k in a.kernel_sizes))
    return np.array(values)


class Counting:
    """An objective function that records every architecture it is asked about."""

    def __init__(self):
        self.seen = []

    def __call__(self, archs):
        self.seen += [a.to_json() for a in archs]
        return _score(archs)


def _objectives(counter=None):
    return [Objective("accuracy", counter or _score, maximize=True), cost_objective(SPACE, "macs")]


def test_canonical_genes_zero_exactly_the_inactive_slots():
    rng = np.random.default_rng(0)
    X = rng.integers(0, SPACE.encoding_upper_bounds + 1, size=(200, len(SPACE.encoding_upper_bounds)))
    canonical = canonical_genes(SPACE, X)
    assert (canonical == SPACE.encode(SPACE.decode(X))).all()
    assert (canonical[:, : 1 + SPACE.num_stages] == X[:, : 1 + SPACE.num_stages]).all()


@pytest.mark.parametrize("algorithm", ["nsga2", "agemoea", "unsga3", "random", "optuna-nsga2", "optuna-tpe"])
def test_every_algorithm_evaluates_distinct_subnets_within_budget_and_is_seeded(algorithm):
    n = 60 if algorithm.startswith("optuna") else 200
    counter = Counting()
    result = run_search(SPACE, _objectives(counter), constraints=["macs <= 5e6"], algorithm=algorithm, n_evals=n,
                        seed=3, pop_size=20)
    assert len(counter.seen) == len(set(counter.seen)) == len(result.archive)
    assert n <= len(result.archive) < n + 20
    assert result.archive["arch"].is_unique
    front = result.front
    assert len(front) and front["feasible"].all() and (front["macs"] <= 5e6).all()
    again = run_search(SPACE, _objectives(), constraints=["macs <= 5e6"], algorithm=algorithm, n_evals=n, seed=3,
                       pop_size=20)
    pd.testing.assert_frame_equal(again.front, front)


def test_evolution_beats_random_search_at_equal_budget():
    hv = {alg: np.mean([run_search(SPACE, _objectives(), algorithm=alg, n_evals=400, seed=s, pop_size=40,
                                   reference_point={"accuracy": 70.0, "macs": 1e7}).hypervolume for s in range(3)])
          for alg in ("nsga2", "random")}
    assert hv["nsga2"] > hv["random"]


def test_an_impossible_budget_fails_at_once_naming_the_cheapest_value():
    cheapest = cost_objective(SPACE, "macs")([SPACE.min()])[0]
    counter = Counting()
    with pytest.raises(InfeasibleBudgetError, match=f"{cheapest:.6g}"):
        run_search(SPACE, _objectives(counter), constraints=["macs <= 1000"], n_evals=100)
    assert counter.seen == []


def _fake_table(seed=0):
    layers = LatencyTable.layers_to_measure(SPACE, SPACE.resolutions)
    from elasticnas.hardware.lookup import layer_key

    rng = np.random.default_rng(seed)
    entries = pd.DataFrame({"layer": [layer_key(s) for s in layers], "latency_ms": rng.uniform(0.01, 0.2, len(layers))})
    metadata = {"statistic": "latency_ms", "call_overhead_ms": 0.005, "space_fingerprint": SPACE.fingerprint,
                "space_name": SPACE.name, "resolutions": list(SPACE.resolutions), "batch_size": 1,
                "device": "cpu", "runtime": "torch"}
    return LatencyTable(SPACE, entries, metadata)


def test_table_latency_cheapest_subnet_is_exact():
    table = _fake_table()
    value, arch, exact = table.cheapest()
    assert exact
    assert value == pytest.approx(table.predict([arch])[0])
    assert value <= table.predict(SPACE.sample(0, n=5000)).min()
    genes = SPACE.encode(arch)
    for i, upper in enumerate(SPACE.encoding_upper_bounds):  # no single-gene change is faster
        for v in range(upper + 1):
            neighbour = genes.copy()
            neighbour[i] = v
            assert table.predict([SPACE.decode(neighbour)])[0] >= value - 1e-12
    with pytest.raises(InfeasibleBudgetError, match=f"{value:.6g}"):
        run_search(SPACE, [_objectives()[0], table_latency_objective(table)],
                   constraints=[f"latency_ms <= {value / 2}"], n_evals=10)


def test_search_resumes_from_its_folder_without_evaluating_again(tmp_path):
    full = run_search(SPACE, _objectives(), algorithm="nsga2", n_evals=160, seed=1, pop_size=20)
    first = Counting()
    run_search(SPACE, _objectives(first), algorithm="nsga2", n_evals=100, seed=1, pop_size=20, out=tmp_path)
    second = Counting()
    resumed = run_search(SPACE, _objectives(second), algorithm="nsga2", n_evals=160, seed=1, pop_size=20,
                         out=tmp_path)
    assert not set(first.seen) & set(second.seen)
    assert len(first.seen) + len(second.seen) == len(resumed.archive)
    assert resumed.archive["arch"].tolist() == full.archive["arch"].tolist()
    with pytest.raises(ConfigError, match="seed"):
        run_search(SPACE, _objectives(), algorithm="nsga2", n_evals=160, seed=2, pop_size=20, out=tmp_path)


def test_optuna_search_resumes_from_its_sqlite_storage(tmp_path):
    first = Counting()
    run_search(SPACE, _objectives(first), algorithm="optuna-tpe", n_evals=20, seed=0, out=tmp_path)
    assert (tmp_path / "optuna.db").exists()
    second = Counting()
    resumed = run_search(SPACE, _objectives(second), algorithm="optuna-tpe", n_evals=30, seed=0, out=tmp_path)
    assert len(first.seen) == 20 and len(second.seen) == 10 and len(resumed.archive) == 30


def test_result_exports_and_best_under_budget(tmp_path):
    result = run_search(SPACE, _objectives(), constraints=["macs <= 6e6"], n_evals=200, seed=0, pop_size=20)
    best = result.best("accuracy", macs=3e6)
    under = result.feasible[result.feasible["macs"] <= 3e6]
    assert best["accuracy"] == under["accuracy"].max()
    result.save(tmp_path, {"macs": [3e6, 6e6]})
    for name in ("archive.csv", "front.csv", "history.csv", "pareto.png", "search.json", "best_macs_3e+06.json"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "best_macs_3e+06.json").read_text())
    assert SPACE.canonical(saved["arch"]).to_json() == best["arch"]
    history = result.history
    assert history["hypervolume"].is_monotonic_increasing and history["n_evals"].iloc[-1] == len(result.archive)


def test_bad_inputs_are_named():
    with pytest.raises(UnknownNameError, match="nsga2"):
        run_search(SPACE, _objectives(), algorithm="nsga9", n_evals=10)
    with pytest.raises(ConfigError, match="NAME <= NUMBER"):
        run_search(SPACE, _objectives(), constraints=["macs < 3"], n_evals=10)
    with pytest.raises(ConfigError, match="latency_ms"):
        run_search(SPACE, _objectives(), constraints=["latency_ms <= 3"], n_evals=10)
    with pytest.raises(ConfigError, match="returned 1 values"):
        run_search(SPACE, [Objective("broken", lambda archs: [1.0])], n_evals=10)
    assert {"nsga2", "agemoea", "unsga3", "random", "optuna-nsga2", "optuna-tpe"} <= set(list_algorithms())


def test_guided_search_measures_each_subnet_once_and_records_iterations(tmp_path):
    counter = Counting()
    accuracy = Objective("accuracy", counter, maximize=True, source="measured")
    result = run_guided_search(SPACE, [accuracy, cost_objective(SPACE, "macs")], n_real_evals=40, n_initial=16,
                               per_iteration=8, inner_evals=400, inner_pop_size=40, seed=0, out=tmp_path)
    assert len(counter.seen) == len(set(counter.seen)) == len(result.archive) == 40
    iterations = result.iterations
    assert iterations["n_real"].tolist() == [24, 32, 40]
    assert iterations["hypervolume"].is_monotonic_increasing
    assert {"tau_accuracy", "overhead_seconds"} <= set(iterations.columns)
    assert (tmp_path / "iterations.csv").exists()
    again = Counting()
    run_guided_search(SPACE, [Objective("accuracy", again, maximize=True, source="measured"),
                              cost_objective(SPACE, "macs")], n_real_evals=40, n_initial=16, per_iteration=8,
                      inner_evals=400, inner_pop_size=40, seed=0, out=tmp_path)
    assert again.seen == []  # resumed entirely from the journal


def test_a_trial_begun_after_another_worker_filled_the_shared_budget_is_not_evaluated(monkeypatch, caplog):
    """The race of two workers, made deterministic: right after this worker's callback has counted
    the study short of the budget, "another worker" completes enough subnets to fill it. The
    trial this worker asks next must fail unevaluated, or a worker that finished on seeing no
    trial RUNNING would have written results missing it."""
    optuna = pytest.importorskip("optuna")
    import elasticnas.search.algorithms as algorithms

    storage, budget = optuna.storages.InMemoryStorage(), 12
    distributions = {f"g{i}": optuna.distributions.IntDistribution(0, int(u))
                     for i, u in enumerate(SPACE.encoding_upper_bounds)}
    others = SPACE.encode(list(dict.fromkeys(SPACE.sample(7, n=3 * budget)))[:budget])
    original = algorithms._stop_at_budget

    def racing(*args):
        callback = original(*args)

        def counted_then_raced(study, trial):
            callback(study, trial)
            if trial.number == 3:  # counted short of the budget; now the other worker fills it
                for genes in others:
                    study.add_trial(optuna.trial.create_trial(params={f"g{i}": int(v) for i, v in enumerate(genes)},
                                                              distributions=distributions, values=[0.0, 0.0]))

        return counted_then_raced

    monkeypatch.setattr(algorithms, "_stop_at_budget", racing)
    counter = Counting()
    result = run_search(SPACE, _objectives(counter), algorithm="optuna-tpe", n_evals=budget, seed=0,
                        storage=storage, study_name="race")
    trials = optuna.load_study(study_name="race", storage=storage).get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1 and failed[0].number == 4 + budget and not failed[0].params  # the next one asked
    assert "not_evaluated" in failed[0].user_attrs
    assert not [r for r in caplog.records if "failed" in r.getMessage()]  # a deliberate stop, not an error
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    in_study = {a.to_json() for a in SPACE.decode([[t.params[k] for k in distributions] for t in complete])}
    assert set(result.archive["arch"]) == in_study  # this worker's result covers the whole study
    assert set(counter.seen) == in_study  # and it evaluated nothing else: its own four, then the others'
