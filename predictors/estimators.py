"""Regressors for accuracy and latency, with the scikit-learn estimator contract.

Each one standardises the target before fitting (so one set of hyperparameter ranges
serves top-1 in percent and latency in milliseconds alike) and registers an optuna search
space, which :class:`~elasticnas.predictors.AutoPredictor` tunes. Features are numbers:
put an :class:`~elasticnas.predictors.ArchEncoder` in front in a pipeline.

>>> make_pipeline(ArchEncoder(space), SVRPredictor(C=10.0)).fit(archs, top1)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Matern, WhiteKernel
from sklearn.linear_model import Ridge
from sklearn.neural_network import MLPRegressor
from sklearn.svm import SVR
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from elasticnas.core.errors import unknown_name
from elasticnas.core.registry import Registry


class _StandardisedTargetRegressor(RegressorMixin, BaseEstimator):
    """Fits ``_build()`` on the standardised target and maps predictions back.

    BLAS runs single-threaded here: on a few hundred samples its thread start-up costs
    20x the arithmetic (an MLP fit: 4.4 s with 2 OpenBLAS threads, 0.2 s with one).
    """

    def _build(self):
        raise NotImplementedError

    def fit(self, X, y):
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        if len(y) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 samples, but got n_samples = {len(y)}")
        self.y_mean_ = float(np.mean(y))
        scale = float(np.std(y))
        self.y_scale_ = scale if scale > 0 else 1.0
        with threadpool_limits(limits=1, user_api="blas"):
            self.model_ = self._build().fit(X, (y - self.y_mean_) / self.y_scale_)
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        with threadpool_limits(limits=1, user_api="blas"):
            predictions = self.model_.predict(X)
        return np.asarray(predictions, dtype=np.float64).ravel() * self.y_scale_ + self.y_mean_


class RidgePredictor(_StandardisedTargetRegressor):
    """Linear model with an L2 penalty: fast, strong on one-hot encodings of real accuracy."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def _build(self):
        return Ridge(alpha=self.alpha)


class SVRPredictor(_StandardisedTargetRegressor):
    """Support-vector regression with an RBF kernel."""

    def __init__(self, C: float = 1.0, epsilon: float = 0.1, gamma: float | str = "scale"):
        self.C = C
        self.epsilon = epsilon
        self.gamma = gamma

    def _build(self):
        return SVR(kernel="rbf", C=self.C, epsilon=self.epsilon, gamma=self.gamma)


class GaussianProcessPredictor(_StandardisedTargetRegressor):
    """Gaussian process; kernel amplitude, length scale and noise fitted by marginal likelihood."""

    def __init__(self, kernel: str = "rbf", length_scale: float = 3.0, noise: float = 0.1,
                 random_state: int | None = None):
        self.kernel = kernel
        self.length_scale = length_scale
        self.noise = noise
        self.random_state = random_state

    def _build(self):
        kinds = {"rbf": lambda: RBF(self.length_scale, (1e-2, 1e3)),
                 "matern": lambda: Matern(self.length_scale, (1e-2, 1e3), nu=2.5)}
        if self.kernel not in kinds:
            raise unknown_name("kernel", self.kernel, kinds)
        kernel = (ConstantKernel(1.0, (1e-2, 1e2)) * kinds[self.kernel]()
                  + WhiteKernel(self.noise, (1e-5, 1e1)))
        return GaussianProcessRegressor(kernel, normalize_y=False, random_state=self.random_state)


class GradientBoostingPredictor(_StandardisedTargetRegressor):
    """Gradient-boosted regression trees."""

    def __init__(self, n_estimators: int = 200, learning_rate: float = 0.05, max_depth: int = 3,
                 subsample: float = 0.8, random_state: int | None = None):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.random_state = random_state

    def _build(self):
        return GradientBoostingRegressor(n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                                         max_depth=self.max_depth, subsample=self.subsample,
                                         random_state=self.random_state)


class RandomForestPredictor(_StandardisedTargetRegressor):
    """Random forest."""

    def __init__(self, n_estimators: int = 200, max_features: float = 0.5, min_samples_leaf: int = 1,
                 random_state: int | None = None):
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def _build(self):
        return RandomForestRegressor(n_estimators=self.n_estimators, max_features=self.max_features,
                                     min_samples_leaf=self.min_samples_leaf, random_state=self.random_state)


class MLPPredictor(_StandardisedTargetRegressor):
    """Multilayer perceptron trained by L-BFGS (full batch suits a few hundred samples)."""

    def __init__(self, hidden_layer_sizes: tuple[int, ...] = (64,), alpha: float = 1e-2, max_iter: int = 300,
                 random_state: int | None = None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X, y):
        super().fit(X, y)
        self.n_iter_ = self.model_.n_iter_
        return self

    def _build(self):
        return MLPRegressor(hidden_layer_sizes=tuple(self.hidden_layer_sizes), alpha=self.alpha, solver="lbfgs",
                            max_iter=self.max_iter, random_state=self.random_state)


# name -> (class, optuna search space: trial -> keyword arguments)
_BUILT_IN: dict[str, tuple[type, Callable]] = {
    "ridge": (RidgePredictor, lambda t: {"alpha": t.suggest_float("ridge.alpha", 1e-3, 1e3, log=True)}),
    "svr": (SVRPredictor, lambda t: {
        "C": t.suggest_float("svr.C", 1e-1, 1e3, log=True),
        "epsilon": t.suggest_float("svr.epsilon", 1e-3, 1.0, log=True),
        "gamma": t.suggest_float("svr.gamma", 1e-4, 1.0, log=True),
    }),
    "gp": (GaussianProcessPredictor, lambda t: {
        "kernel": t.suggest_categorical("gp.kernel", ["rbf", "matern"]),
        "length_scale": t.suggest_float("gp.length_scale", 0.3, 30.0, log=True),
    }),
    "gbt": (GradientBoostingPredictor, lambda t: {
        "n_estimators": t.suggest_int("gbt.n_estimators", 50, 400, log=True),
        "learning_rate": t.suggest_float("gbt.learning_rate", 0.01, 0.3, log=True),
        "max_depth": t.suggest_int("gbt.max_depth", 2, 5),
        "subsample": t.suggest_float("gbt.subsample", 0.5, 1.0),
    }),
    "rf": (RandomForestPredictor, lambda t: {
        "n_estimators": t.suggest_int("rf.n_estimators", 50, 300, log=True),
        "max_features": t.suggest_float("rf.max_features", 0.1, 1.0),
        "min_samples_leaf": t.suggest_int("rf.min_samples_leaf", 1, 5),
    }),
    "mlp": (MLPPredictor, lambda t: {
        "hidden_layer_sizes": (t.suggest_int("mlp.width", 8, 128, log=True),) * t.suggest_int("mlp.layers", 1, 2),
        "alpha": t.suggest_float("mlp.alpha", 1e-4, 10.0, log=True),
    }),
}
SEEDED = {"gp", "gbt", "rf", "mlp"}
ESTIMATORS: Registry[tuple[type, Callable]] = Registry("estimator")
for _name, _entry in _BUILT_IN.items():
    ESTIMATORS.register(_name, _entry)
register_estimator = ESTIMATORS.register
list_estimators = ESTIMATORS.names


def create_estimator(name: str, seed: int | None = None, **params):
    """An unfitted estimator by registry name, e.g. ``create_estimator("svr", C=10.0)``."""
    cls, _ = ESTIMATORS.get(name)
    if name in SEEDED:
        params.setdefault("random_state", seed)
    return cls(**params)
