"""AutoPredictor: choose and tune a regressor (or a small ensemble) by cross-validated Kendall tau.

Search ranks architectures, so the selection criterion is the rank correlation of
out-of-fold predictions, not squared error (a predictor with a constant offset ranks
perfectly). optuna's TPE sampler proposes an estimator family, its hyperparameters and
whether to one-hot expand the discrete columns (an RBF kernel on one-hot codes compares
architectures by how many choices differ, on ordinal codes by how far apart they are, and
which ranks better depends on the data); every family is tried at least once; the final
model averages the best trial of each of the top ``ensemble`` families when that average
ranks better out of fold than the best one.

>>> model = make_pipeline(ArchEncoder(space), AutoPredictor(n_trials=40, seed=0))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import optuna
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.utils.validation import check_is_fitted, validate_data

from elasticnas.core.errors import ConfigError
from elasticnas.predictors.estimators import ESTIMATORS, create_estimator
from elasticnas.predictors.quality import kendall_tau

# Columns with at most this many distinct training values count as discrete choices.
MAX_CATEGORIES = 12


def _discrete_columns(X: np.ndarray) -> list[int]:
    return [j for j in range(X.shape[1]) if len(np.unique(X[:, j])) <= MAX_CATEGORIES]


def _one_hot_then(estimator, columns: list[int]):
    expand = ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False), columns)],
                               remainder="passthrough")
    return make_pipeline(expand, estimator)


# Built-ins in the order their first trials are enqueued (cheap, smooth models first); estimators
# registered later follow in sorted order.
BUILT_IN_ORDER = ("ridge", "svr", "gp", "gbt", "rf", "mlp")


def default_candidates() -> list[str]:
    return [*BUILT_IN_ORDER, *(n for n in ESTIMATORS.names() if n not in BUILT_IN_ORDER)]


class AutoPredictor(RegressorMixin, BaseEstimator):
    """Regressor that tunes its own model by cross-validated Kendall tau.

    Parameters: ``candidates`` (registry names; all by default), ``n_trials`` (optuna
    trials, at least one per candidate), ``cv`` (folds), ``ensemble`` (most families to
    average; 1 disables ensembling), ``timeout`` (seconds, optional), ``seed``.

    After ``fit``: ``members_`` (fitted estimators averaged in ``predict``), ``cv_score_``
    (their out-of-fold tau), ``trials_`` (a DataFrame of every trial) and ``oof_predictions_``.
    """

    def __init__(self, candidates: tuple[str, ...] | None = None, n_trials: int = 40, cv: int = 5,
                 ensemble: int = 3, timeout: float | None = None, seed: int | None = 0):
        self.candidates = candidates
        self.n_trials = n_trials
        self.cv = cv
        self.ensemble = ensemble
        self.timeout = timeout
        self.seed = seed

    def _names(self) -> list[str]:
        names = list(self.candidates) if self.candidates is not None else default_candidates()
        for name in names:
            ESTIMATORS.get(name)  # an unknown name fails here, listing the known ones
        if not names:
            raise ConfigError("AutoPredictor needs at least one candidate estimator")
        if self.cv < 2 or self.ensemble < 1:
            raise ConfigError(f"AutoPredictor needs cv >= 2 and ensemble >= 1, but got cv={self.cv}, "
                              f"ensemble={self.ensemble}")
        return names

    def fit(self, X, y):
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        names = self._names()
        if len(y) < 2:
            raise ValueError(f"AutoPredictor needs at least 2 samples to cross-validate, got n_samples = {len(y)}")
        folds = list(KFold(min(self.cv, len(y)), shuffle=True, random_state=self.seed).split(X))
        records: list[dict] = []
        discrete = _discrete_columns(X)
        feature_choices = ["given", "onehot"] if discrete else ["given"]

        def objective(trial: optuna.Trial) -> float:
            name = trial.suggest_categorical("estimator", names)
            features = trial.suggest_categorical("features", feature_choices)
            params = ESTIMATORS.get(name)[1](trial)
            estimator = create_estimator(name, seed=self.seed, **params)
            if features == "onehot":
                estimator = _one_hot_then(estimator, discrete)
            predictions = np.empty(len(y))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    for train, test in folds:
                        predictions[test] = clone(estimator).fit(X[train], y[train]).predict(X[test])
            except (ValueError, np.linalg.LinAlgError) as error:  # a numerically hopeless setting
                raise optuna.TrialPruned(str(error)) from error
            if not np.isfinite(predictions).all():
                raise optuna.TrialPruned("non-finite predictions")
            tau = kendall_tau(y, predictions)
            records.append({"trial": trial.number, "estimator": name, "features": features, "params": params,
                            "tau": tau, "model": estimator, "predictions": predictions})
            return tau

        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=self.seed))
            for name in names:  # every family gets a try before TPE concentrates
                study.enqueue_trial({"estimator": name})
            study.optimize(objective, n_trials=max(self.n_trials, len(names)), timeout=self.timeout)
        finally:
            optuna.logging.set_verbosity(verbosity)
        if not records:
            raise ConfigError("every AutoPredictor trial failed; check the training data for NaNs or constants")

        best_per_family: dict[str, dict] = {}
        for record in sorted(records, key=lambda r: -r["tau"]):
            best_per_family.setdefault(record["estimator"], record)
        ranked = list(best_per_family.values())
        chosen, best_tau = ranked[:1], ranked[0]["tau"]
        for k in range(2, min(self.ensemble, len(ranked)) + 1):
            tau = kendall_tau(y, np.mean([r["predictions"] for r in ranked[:k]], axis=0))
            if tau > best_tau:
                chosen, best_tau = ranked[:k], tau
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.members_ = [clone(r["model"]).fit(X, y) for r in chosen]
        self.member_names_ = [r["estimator"] + "(onehot)" * (r["features"] == "onehot") for r in chosen]
        self.cv_score_ = float(best_tau)
        self.oof_predictions_ = np.mean([r["predictions"] for r in chosen], axis=0)
        # plain values only, so that skops can save the fitted predictor
        self.trial_records_ = [{"trial": r["trial"], "estimator": r["estimator"], "features": r["features"],
                                "tau": r["tau"], "params": json.dumps(r["params"])} for r in records]
        return self

    @property
    def trials_(self) -> pd.DataFrame:
        """One row per completed trial: number, estimator family, features (given or onehot),
        hyperparameters (JSON), out-of-fold tau."""
        check_is_fitted(self, "members_")
        return pd.DataFrame(self.trial_records_)

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "members_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return np.mean([member.predict(X) for member in self.members_], axis=0)
