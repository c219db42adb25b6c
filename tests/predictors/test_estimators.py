from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from elasticnas.predictors import (
    ArchEncoder,
    AutoPredictor,
    DynastBaselinePredictor,
    create_estimator,
    fit_with_folds,
    kendall_tau,
    list_estimators,
)
from elasticnas.supernet import UnknownNameError, create_space

SPACE = create_space("tiny_mbv3", num_classes=10, in_channels=1)


def _our_estimators():
    small = {"gbt": {"n_estimators": 20}, "rf": {"n_estimators": 10}, "mlp": {"max_iter": 100}}
    return [create_estimator(name, seed=0, **small.get(name, {})) for name in list_estimators()] + [
        AutoPredictor(candidates=("ridge", "svr"), n_trials=3, cv=3, seed=0),
    ]


@parametrize_with_checks(_our_estimators())
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", [*_our_estimators(), DynastBaselinePredictor()], ids=lambda e: type(e).__name__)
def test_predict_before_fit_raises_not_fitted(estimator):
    with pytest.raises(NotFittedError):
        estimator.predict(np.zeros((2, 3)))


def _synthetic(n=150, seed=0):
    """A nonlinear function of the architecture: accuracy-like saturation in capacity."""
    archs = list(dict.fromkeys(SPACE.sample(seed, n=n)))
    X = ArchEncoder(SPACE, "ordinal").fit().transform(archs)
    capacity = X[:, 0] * 2 + X[:, 1 : 1 + SPACE.num_stages].sum(1) + X[:, 1 + SPACE.num_stages :].sum(1) / 4
    noise = np.random.default_rng(seed).normal(0, 0.05, len(archs))
    return X, 100 - 10 * np.exp(-capacity / 3) + noise


@pytest.mark.slow
def test_auto_predictor_is_seeded_tunes_every_family_and_ranks_held_out_data_well():
    X, y = _synthetic()
    train, test = slice(0, 110), slice(110, None)
    first = AutoPredictor(n_trials=10, seed=0).fit(X[train], y[train])
    second = AutoPredictor(n_trials=10, seed=0).fit(X[train], y[train])
    assert np.array_equal(first.predict(X[test]), second.predict(X[test]))
    assert len(first.trials_) == 10 and set(first.trials_["estimator"]) == set(list_estimators())
    assert 1 <= len(first.members_) <= 3
    assert first.cv_score_ >= first.trials_["tau"].max() - 1e-12
    assert kendall_tau(y[test], first.predict(X[test])) > 0.7


def test_auto_predictor_rejects_unknown_candidates_by_name():
    with pytest.raises(UnknownNameError, match="ridge"):
        AutoPredictor(candidates=("xgboost",)).fit(np.zeros((10, 2)), np.arange(10.0))


def test_dynast_baseline_keeps_the_model_with_the_lower_cross_validated_mape():
    rng = np.random.default_rng(0)
    X = rng.random((80, 5))
    linear = 50 + X @ np.array([3.0, -2.0, 1.0, 0.5, 4.0])
    assert DynastBaselinePredictor().fit(X, linear).chosen_ == "ridge"
    bumpy = 50 + 5 * np.sin(8 * X[:, 0]) * np.cos(8 * X[:, 1])
    model = DynastBaselinePredictor().fit(X, bumpy)
    assert model.chosen_ == "svr" and model.cv_mape_ > 0


def test_auto_predictor_one_hot_expands_discrete_choices_when_that_ranks_better(tmp_path):
    from elasticnas.predictors import load_predictor, save_predictor

    # Accuracy that depends on which kernel size a block has, not on how large it is: a linear
    # model cannot rank it on ordinal codes, and ranks it exactly on one-hot codes.
    archs = list(dict.fromkeys(SPACE.sample(3, n=160)))
    effect = {3: 0.0, 5: 2.0, 7: 1.0}
    y = np.array([sum(effect[k] for k in a.kernel_sizes[:3] if k) for a in archs])
    X = ArchEncoder(SPACE, "ordinal").fit().transform(archs)
    train, test = slice(0, 120), slice(120, None)
    model = AutoPredictor(candidates=("ridge",), n_trials=6, cv=3, seed=0).fit(X[train], y[train])
    assert set(model.trials_["features"]) == {"given", "onehot"}
    assert model.member_names_ == ["ridge(onehot)"]
    by_features = model.trials_.groupby("features")["tau"].max()
    assert by_features["onehot"] > by_features["given"] + 0.1
    assert kendall_tau(y[test], model.predict(X[test])) > 0.75  # ridge on ordinal codes: about 0.4
    path = save_predictor(model, tmp_path / "auto.skops", space=SPACE, target="val_top1")
    assert np.array_equal(load_predictor(path, SPACE).predict(X[test]), model.predict(X[test]))


def test_fold_fits_in_two_processes_equal_those_in_one():
    """fit_run tunes the report's folds and the final predictor in parallel processes: the same
    predictions and the same fitted model as in one process, for a pipeline that encodes
    architectures itself (what fit_run pickles to its workers)."""
    archs = list(dict.fromkeys(SPACE.sample(0, n=30)))
    y = np.linspace(80, 95, len(archs))
    model = make_pipeline(ArchEncoder(SPACE, "ordinal"), AutoPredictor(candidates=("ridge", "rf"), n_trials=2, cv=3))
    one, one_oof = fit_with_folds(model, archs, y, cv=3, n_jobs=1)
    two, two_oof = fit_with_folds(model, archs, y, cv=3, n_jobs=2)
    assert np.array_equal(one_oof, two_oof) and np.array_equal(one.predict(archs), two.predict(archs))
    with pytest.raises(NotFittedError):
        model.predict(archs)  # the estimator given is cloned, never fitted in place
