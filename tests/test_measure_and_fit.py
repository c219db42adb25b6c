from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from elasticnas.cli import main
from elasticnas.hardware import LatencyTable, count_all
from elasticnas.measure import EVAL_COLUMNS, read_evaluations, table_folder
from elasticnas.predictors import load_predictor
from elasticnas.runs import run_space, spread_by_macs
from elasticnas.supernet import create_space

warnings.filterwarnings("ignore", category=UserWarning)


def test_spread_plan_covers_the_macs_range_and_extends_stably():
    space = create_space("tiny_mbv3", num_classes=10, in_channels=1)
    short, long = spread_by_macs(space, 10, seed=0, pool_size=3000), spread_by_macs(space, 30, seed=0, pool_size=3000)
    assert long[:10] == short and len(set(long)) == 30
    macs = count_all(space, long)["macs"]
    assert macs.min() == count_all(space, [space.min()])["macs"][0]
    assert macs.max() == count_all(space, [space.max()])["macs"][0]
    gaps = np.diff(np.sort(macs)) / (macs.max() - macs.min())
    assert gaps.max() < 0.15  # no hole in the range, unlike uniform sampling's tails


def test_spread_plan_of_a_precision_space_covers_both_precisions_at_every_size():
    space = create_space("tiny_mbv3", num_classes=10, in_channels=1, precisions=(8, 32))
    plan = spread_by_macs(space, 60, seed=0, pool_size=3000)
    macs = count_all(space, plan)["macs"]
    small, large = macs <= np.median(macs), macs > np.median(macs)
    int8 = np.array([a.precision == 8 for a in plan])
    for half in (small, large):  # tied to size, int8 would fill the small half and float32 the large one
        assert 0.25 < int8[half].mean() < 0.75
    assert {space.sample_at_level(np.random.default_rng(s), 0.0).precision for s in range(20)} == {8, 32}


@pytest.mark.slow
def test_measure_resumes_without_measuring_a_subnet_twice_then_fit_writes_predictors(run_copy, capsys):
    assert main(["measure", str(run_copy), "--n", "6"]) == 0
    first = read_evaluations(run_copy)
    assert len(first) == 6 and first["val_images"].gt(0).all()
    assert first["precision"].eq(32).all()  # bits, as deployed: a float32 space measures float32 subnets
    halves = first[["val_top1_half_a", "val_top1_half_b"]].mean(axis=1)
    assert np.allclose(halves, first["val_top1"], atol=100 / first["val_images"].min())  # equal halves, to one image
    share = first["val_top1"] / 100
    assert np.allclose(first["val_top1_se"], 100 * np.sqrt(share * (1 - share) / first["val_images"]))
    # a kill mid-write leaves a torn row: it is dropped and measured again
    path = run_copy / "evaluations.csv"
    path.write_text(path.read_text() + first["arch"].iloc[0][:15])
    assert main(["measure", str(run_copy), "--n", "12"]) == 0
    evaluations = read_evaluations(run_copy)
    assert len(evaluations) == 12 and evaluations["arch"].is_unique
    pd.testing.assert_frame_equal(evaluations.iloc[:6], first)
    space = run_space(run_copy)
    costs = count_all(space, [space.canonical(a) for a in evaluations["arch"]])
    assert (evaluations["macs"].to_numpy() == costs["macs"]).all()

    assert main(["fit", str(run_copy), "--trials", "6", "--folds", "3"]) == 0
    reports = pd.read_csv(run_copy / "predictors" / "reports.csv")
    assert set(reports["target"]) == {"val_top1", "table_latency_ms"}
    accuracy = reports.set_index("target").loc["val_top1"]
    assert -1 <= accuracy["retest_tau"] <= 1 and accuracy["noise_share"] > 0 and accuracy["mean_se"] > 0
    assert accuracy["retest_tau"] >= accuracy["retest_tau_halves"] or accuracy["retest_tau_halves"] <= 0
    assert "the measurement's own ceiling" in capsys.readouterr().out
    assert (run_copy / "predictors" / "predictor_quality.png").stat().st_size > 0
    latency = load_predictor(run_copy / "predictors" / "latency.skops", space)
    assert latency.predict([space.max()])[0] > latency.predict([space.min()])[0]

    # search on the fitted accuracy predictor and the table, under two budgets
    table = LatencyTable.load(table_folder(run_copy, "cpu", "torch"))
    cheapest, _, _ = table.cheapest()
    # placed among random subnets by the table itself, not at multiples of the cheapest one:
    # how far the cheapest is below the rest depends on the machine's speed and load
    sampled = table.predict(space.sample(np.random.default_rng(3), n=200))
    budgets = [round(float(np.quantile(sampled, share)), 4) for share in (0.2, 0.6)]
    out = run_copy / "search" / "predicted"
    assert main(["search", str(run_copy), "--latency-budget-ms", str(budgets[0]), "--latency-budget-ms",
                 str(budgets[1]), "--predicted-evals", "600", "--out", str(out)]) == 0
    for budget in budgets:
        best = json.loads((out / f"best_latency_ms_{budget:g}.json").read_text())
        assert best["latency_ms"] <= budget and best["accuracy_source"] == "predicted"
    assert "hypervolume" in capsys.readouterr().out
    # predictor-in-the-loop: measured accuracy lands in evaluations.csv, nothing measured twice
    assert main(["search", str(run_copy), "--latency-budget-ms", str(budgets[1]), "--real-evals", "16",
                 "--predicted-evals", "300", "--out", str(run_copy / "search" / "guided")]) == 0
    evaluations = read_evaluations(run_copy)
    assert evaluations["arch"].is_unique and len(evaluations) > 12
    guided = pd.read_csv(run_copy / "search" / "guided" / "archive.csv")
    assert len(guided) == 16 and set(guided["accuracy_source"]) == {"measured"}
    assert main(["search", str(run_copy), "--latency-budget-ms", str(cheapest / 2), "--predicted-evals", "100",
                 "--out", str(run_copy / "search" / "impossible")]) == 2
    assert f"{cheapest:.6g}" in capsys.readouterr().err


@pytest.mark.slow
def test_a_journal_from_before_the_noise_columns_keeps_its_header_and_every_row(run_copy, capsys):
    assert main(["measure", str(run_copy), "--n", "3"]) == 0
    path = run_copy / "evaluations.csv"
    read_evaluations(run_copy)[list(EVAL_COLUMNS)].to_csv(path, index=False)  # as an older version wrote it
    assert main(["measure", str(run_copy), "--n", "10"]) == 0
    evaluations = read_evaluations(run_copy)
    assert list(evaluations.columns) == list(EVAL_COLUMNS) and len(evaluations) == 10
    assert main(["fit", str(run_copy), "--trials", "2", "--folds", "2"]) == 0
    assert "predates the noise columns" in capsys.readouterr().out


def test_fit_without_measurements_says_what_to_run(run_copy, capsys):
    assert main(["fit", str(run_copy)]) == 2
    assert "elasticnas measure" in capsys.readouterr().err


def test_measure_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["measure", str(tmp_path), "--n", "3"]) == 2
    assert "elasticnas train" in capsys.readouterr().err


@pytest.mark.parametrize("n", ["0", "-3"])
def test_measure_rejects_a_non_positive_count(run_copy, capsys, n):
    assert main(["measure", str(run_copy), "--n", n]) == 2
    assert "--n" in capsys.readouterr().err


def test_a_phase_latency_is_refused_where_the_space_times_one_kind_of_pass(run_copy, capsys):
    for option in (["--objectives", "accuracy,latency_prefill"], ["--phase-budget-ms", "prefill=5"]):
        assert main(["search", str(run_copy), *option, "--predicted-evals", "50"]) == 2
        err = capsys.readouterr().err
        assert "'prefill'" in err and "one kind of pass" in err
    assert not (run_copy / "tables" / "cpu_torch_prefill").exists()
    assert main(["search", str(run_copy), "--phase-budget-ms", "prefill"]) == 2
    assert "PHASE=MS" in capsys.readouterr().err
    assert main(["search", str(run_copy), "--phase-budget-ms", "prefill=-1"]) == 2
    assert "--phase-budget-ms prefill=-1.0 is not allowed" in capsys.readouterr().err  # its own option, not another's
