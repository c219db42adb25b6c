"""How good a predictor is, measured on data it did not see.

Search needs rankings more than values, so Kendall tau comes first; the error figures say
whether predicted values can be quoted (e.g. "2.9 ms, under the 3 ms budget").
"""

from __future__ import annotations

import numpy as np
from joblib import Parallel, delayed
from scipy.stats import kendalltau, spearmanr
from sklearn.base import clone
from sklearn.model_selection import KFold

from elasticnas.core.errors import ConfigError

# kind -> (absolute tolerance, its label), or None for the relative ±10% of a latency
TOLERANCES = {"accuracy": (1.0, "±1 point"), "bits": (0.05, "±0.05 bits"), "latency": None}
TARGET_KINDS = tuple(TOLERANCES)


def kendall_tau(y_true, y_pred) -> float:
    tau = kendalltau(y_true, y_pred).statistic
    return float(tau) if np.isfinite(tau) else 0.0


def quality_report(y_true, y_pred, kind: str = "accuracy") -> dict[str, float]:
    """Kendall tau, Spearman rho, RMSE, MAPE (%) and the share (%) of predictions within
    ±1 point (``kind="accuracy"``, top-1 in percent), ±0.05 bits (``kind="bits"``, a language
    model's bits per byte) or ±10% (``kind="latency"``)."""
    if kind not in TARGET_KINDS:
        raise ConfigError(f"unknown target kind={kind!r}; choose one of {list(TARGET_KINDS)}")
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ConfigError(f"y_true and y_pred must be 1-D and equally long, but got {y_true.shape} and {y_pred.shape}")
    error = y_pred - y_true
    relative = np.abs(error) / np.maximum(np.abs(y_true), 1e-12)
    absolute = TOLERANCES[kind]
    within = np.abs(error) <= absolute[0] if absolute else relative <= 0.10
    rho = spearmanr(y_true, y_pred).statistic if len(y_true) > 1 else np.nan
    return {
        "n": int(len(y_true)),
        "kendall_tau": kendall_tau(y_true, y_pred) if len(y_true) > 1 else 0.0,
        "spearman_rho": float(rho) if np.isfinite(rho) else 0.0,
        "rmse": float(np.sqrt(np.mean(error**2))) if len(error) else float("nan"),
        "mape": float(100 * np.mean(relative)) if len(error) else float("nan"),
        "within": float(100 * np.mean(within)) if len(error) else float("nan"),
        "tolerance": absolute[1] if absolute else "±10%",
    }


def doubled_length_tau(tau: float) -> float:
    """Kendall tau between two measurements twice as long, from ``tau`` between two halves:
    Spearman-Brown's ``2r / (1 + r)`` on the correlation ``r = sin(pi tau / 2)`` (Greiner's
    relation, exact for normal scores), turned back into tau."""
    if not np.isfinite(tau) or tau <= 0:
        return float(tau)
    r = np.sin(np.pi * tau / 2)
    return float(2 / np.pi * np.arcsin(2 * r / (1 + r)))


def measurement_noise(measured, standard_errors, half_a, half_b) -> dict[str, float]:
    """How much of a measured accuracy target is noise, from the measurement itself.

    ``retest_tau_halves``: Kendall tau between the top-1 of two disjoint halves of the
    validation images over the same subnets. ``retest_tau``: from it, the tau between two
    measurements on as many images as the whole split (:func:`doubled_length_tau`), the
    ranking a repeated measurement reproduces: a predictor scored against this measurement
    cannot be expected to beat it by much, and one well below it has room to improve.
    ``noise_share``: the mean squared standard error over the variance of the measured values
    across subnets; near 1 the subnets' differences are mostly sampling noise (an upper bound:
    subnets scored on the same images share part of their noise, which changes no ranking).
    ``mean_se``: the mean standard error, in the target's units.
    """
    measured, errors = np.asarray(measured, dtype=np.float64), np.asarray(standard_errors, dtype=np.float64)
    half_a, half_b = np.asarray(half_a, dtype=np.float64), np.asarray(half_b, dtype=np.float64)
    known = np.isfinite(errors) & np.isfinite(half_a) & np.isfinite(half_b)
    if known.sum() < 2:
        return {"retest_tau": float("nan"), "retest_tau_halves": float("nan"), "noise_share": float("nan"),
                "mean_se": float("nan")}
    spread = float(np.var(measured[known], ddof=1))
    noise = float(np.mean(errors[known] ** 2))
    halves = kendall_tau(half_a[known], half_b[known])
    return {"retest_tau": doubled_length_tau(halves), "retest_tau_halves": halves,
            # identical values measured along different sums differ by rounding only: no spread at all
            "noise_share": noise / spread if spread > 1e-12 * max(1.0, float(np.mean(measured[known])) ** 2)
            else float("inf"),
            "mean_se": float(np.mean(errors[known]))}


def out_of_fold_predictions(estimator, X, y, *, cv: int = 5, seed: int | None = 0, n_jobs: int = 1) -> np.ndarray:
    """Each sample predicted by a clone of ``estimator`` fitted on the folds without it;
    ``n_jobs`` processes fit the folds (joblib's convention: -1 is every core)."""
    return fit_with_folds(estimator, X, y, cv=cv, seed=seed, n_jobs=n_jobs, refit=False)[1]


def fit_with_folds(estimator, X, y, *, cv: int = 5, seed: int | None = 0, n_jobs: int = 1,
                   refit: bool = True):
    """``(fitted, out_of_fold_predictions)``: the ``cv`` fold fits and (``refit``) the fit on
    every sample as independent jobs in ``n_jobs`` processes. Each job is seeded as in one
    process, so the results do not depend on ``n_jobs``."""
    y = np.asarray(y, dtype=np.float64)
    if len(y) < cv or cv < 2:
        raise ConfigError(f"cross-validation with cv={cv} needs at least {max(cv, 2)} samples, but got {len(y)}")
    jobs = list(KFold(cv, shuffle=True, random_state=seed).split(np.arange(len(y))))
    if refit:
        jobs.append((np.arange(len(y)), np.arange(0)))
    done = Parallel(n_jobs=min(n_jobs, len(jobs)) if n_jobs > 0 else n_jobs)(
        delayed(_fit_part)(estimator, _take(X, train), y[train], _take(X, test)) for train, test in jobs)
    predictions = np.empty(len(y))
    for (_, test), (_, predicted) in zip(jobs[:cv], done, strict=False):
        predictions[test] = predicted
    return (done[-1][0] if refit else None), predictions


def _fit_part(estimator, X_train, y_train, X_test):
    model = clone(estimator).fit(X_train, y_train)
    return model, (model.predict(X_test) if len(X_test) else np.empty(0))


def cross_validated_report(estimator, X, y, *, kind: str = "accuracy", cv: int = 5, seed: int | None = 0,
                           n_jobs: int = 1):
    """``(report, out_of_fold_predictions)`` for ``estimator`` on ``X, y``."""
    predictions = out_of_fold_predictions(estimator, X, y, cv=cv, seed=seed, n_jobs=n_jobs)
    return quality_report(y, predictions, kind), predictions


def _take(X, index: np.ndarray):
    if hasattr(X, "iloc"):
        return X.iloc[index]
    if isinstance(X, np.ndarray):
        return X[index]
    return [X[i] for i in index]
