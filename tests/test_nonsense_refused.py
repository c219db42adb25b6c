"""Settings that cannot mean anything are refused in one line before any work; a diverged training stops."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from elasticnas.cli import main
from elasticnas.core.atomic import atomic_write_json
from elasticnas.core.errors import ConfigError
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


@pytest.mark.parametrize(("settings", "named"), [
    (["data.batch_size=5000"], "exceeds the"),  # digits has fewer training images
    (["init.freeze=[nonesuch.*]", "init.freeze_epochs=1"], "matches no parameter"),
])
def test_train_dry_run_refuses_what_the_run_would_refuse_before_its_first_step(tmp_path, capsys, settings, named):
    """Checks made when the trainer is built, not when the config is parsed, are a dry run's too."""
    assert main(["train", "mnist_sandwich", "--dry-run", "--set", "data.name=digits", *settings]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err, err


def test_train_dry_run_loads_the_parent_and_refuses_one_of_another_supernet(run_copy, tmp_path, capsys):
    assert main(["train", "mnist_resnet_sandwich", "--dry-run", "--init", str(run_copy),
                 "--set", "data.name=digits"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "parent" in err, err
    assert not (tmp_path / "dry-run").exists()


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


@pytest.mark.slow
def test_a_diverged_run_resumes_from_its_last_good_checkpoint_after_its_learning_rate_is_fixed(tmp_path, capsys):
    def poison_in_second_epoch(trainer, step):
        if trainer.epoch == 1 and trainer.step_in_epoch == 1 and not poisoned:
            poisoned.append(step)
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))

    poisoned, out = [], tmp_path / "run"
    settings = [*FAST_RUN, "train.epochs=2"]
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 2.*after epoch 1\): lower optim.lr.*--resume"):
        train_experiment(load_experiment("mnist_sandwich", settings), out, progress=False,
                         on_step=poison_in_second_epoch)
    [pending] = json.loads((out / "divergences.json").read_text())
    assert pending["checkpoint_epoch"] == 1 and pending["fixed_with"] is None and pending["loss"] == "nan"
    lr = load_experiment("mnist_sandwich", settings).optim.lr
    # only optimisation settings may change, and only because the run diverged
    assert main(["train", "--out", str(out), "--resume", "--set", *settings, "train.seed=1"]) == 2
    assert "may change only optim.lr" in capsys.readouterr().err
    fixed = [*settings, f"optim.lr={lr / 2}"]
    trainer, metrics = train_experiment(load_experiment("mnist_sandwich", fixed), out, resume=True, progress=False)
    assert len(metrics) == 2 and np.isfinite(metrics["train_loss"]).all()
    assert trainer.scheduler.base_lrs == [lr / 2] * len(trainer.optimizer.param_groups)
    schedule = trainer.scheduler.lr_lambdas[0](trainer.scheduler.last_epoch)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(lr / 2 * schedule, rel=1e-12)
    assert load_experiment(out / "config.yaml").optim.lr == lr / 2  # the run records what it resumed with
    [done] = json.loads((out / "divergences.json").read_text())
    assert done["fixed_with"] == {"optim.lr": {"was": lr, "now": lr / 2}}
    # with nothing pending, a resume must restate the run's config again
    assert main(["train", "--out", str(out), "--resume", "--set", *settings, f"optim.lr={lr / 4}"]) == 2
    assert "--resume needs the run's own config" in capsys.readouterr().err


@pytest.mark.parametrize("url, hidden", [("postgresql://user:s3cret@localhost:notaport/db", "s3cret"),
                                         ("postgresql://user@localhost/db?password=t0p&port=x:", "t0p"),
                                         ("nonsense", None)])
def test_a_malformed_storage_url_is_refused_before_any_work_without_its_password(run_copy, capsys, url, hidden):
    assert main(["search", str(run_copy), "--algorithm", "optuna-tpe", "--storage", url, "--predicted-evals",
                 "10", "--out", str(run_copy.parent / "s")]) in (2,)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and (hidden is None or hidden not in err), err
    assert not (run_copy.parent / "s").exists()


def test_a_storage_that_cannot_be_opened_never_shows_its_password(tmp_path):
    from elasticnas.search.studies import open_storage

    with pytest.raises(ConfigError, match="cannot open the study storage") as error:
        open_storage(f"sqlite:///{tmp_path}/missing/dir/x.db?password=t0psecret")
    assert "t0psecret" not in str(error.value) and "\n" not in str(error.value)


def test_warnings_reach_the_user_as_one_line_each(monkeypatch, tmp_path, capsys):
    import warnings

    import elasticnas.drawings

    def redraw(folder):
        warnings.warn("the table is\nslower today", UserWarning, stacklevel=1)
        return []

    monkeypatch.setattr(elasticnas.drawings, "redraw", redraw)
    (tmp_path / "config.yaml").write_text("data: {name: digits}\n")
    def shown_as_python_does(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():  # printed as a user sees them, not recorded by pytest
        warnings.simplefilter("always")
        warnings.showwarning = shown_as_python_does
        assert main(["report", str(tmp_path)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["elasticnas report: warning: the table is slower today"], err
