"""Settings that cannot mean anything are refused in one line before any work; a diverged training stops."""

from __future__ import annotations

import json

import pytest
import torch

from elasticnas.cli import main
from elasticnas.core.atomic import atomic_write_json
from elasticnas.experiment import load_experiment, train_experiment
from elasticnas.supernet.training import TrainingDiverged

from .conftest import FAST_RUN


@pytest.mark.parametrize("setting", ["optim.lr=.nan", "optim.lr=.inf", "optim.lr=-1", "optim.lr=0",
                                     "optim.weight_decay=-1e-4", "optim.momentum=1.5", "optim.grad_clip=-1",
                                     "optim.label_smoothing=1"])
def test_train_dry_run_refuses_a_nonsense_optimiser_setting(tmp_path, capsys, setting):
    assert main(["train", "mnist_sandwich", "--dry-run", "--set", "data.name=digits", setting]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and setting.split("=")[0] in err and "finite number" in err, err


@pytest.mark.parametrize("budget", ["inf", "nan", "-1", "0"])
def test_budgets_that_are_not_finite_and_positive_are_refused_before_any_work(run_copy, capsys, budget):
    before = sorted(p.name for p in run_copy.iterdir())
    out = run_copy / "exports" / "b"
    assert main(["export", str(run_copy), "--budget-ms", budget, "--out", str(out)]) == 2
    assert main(["search", str(run_copy), "--latency-budget-ms", budget, "--predicted-evals", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("budget-ms" in line and "finite number" in line for line in err), err
    assert sorted(p.name for p in run_copy.iterdir()) == before


def test_reports_are_strict_json(tmp_path):
    path = atomic_write_json(tmp_path / "r.json", {"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": -1e400}})
    assert json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in JSON")) == \
        {"a": None, "b": [None, 1.5], "c": {"d": None}}


def test_a_loss_that_stops_being_finite_stops_training_before_saving(tmp_path):
    def poison(trainer, step):
        if step == 2:
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))

    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 1, step 3.*no checkpoint") as error:
        train_experiment(load_experiment("mnist_sandwich", FAST_RUN), out, progress=False, on_step=poison)
    assert "\n" not in str(error.value)
    assert not (out / "checkpoint.pt").exists()
