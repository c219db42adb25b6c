"""The DyNAS-T predictor recipe, reimplemented as the baseline our predictors must beat.

Ridge over an alpha grid and RBF support-vector regression over a C grid, each tuned by
5-fold grid search; the one with the lower cross-validated mean absolute percentage error
is refitted on all data. DyNAS-T feeds it a one-hot encoding (``ArchEncoder(kind="onehot")``).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.svm import SVR
from sklearn.utils.validation import check_is_fitted, validate_data

RIDGE_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
SVR_CS = (0.1, 1.0, 10.0, 100.0, 1000.0)


class DynastBaselinePredictor(RegressorMixin, BaseEstimator):
    def __init__(self, cv: int = 5, seed: int | None = 0):
        self.cv = cv
        self.seed = seed

    def fit(self, X, y):
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        folds = KFold(min(self.cv, len(y)), shuffle=True, random_state=self.seed)
        searches = {
            "ridge": GridSearchCV(Ridge(), {"alpha": RIDGE_ALPHAS}, cv=folds,
                                  scoring="neg_mean_absolute_percentage_error"),
            "svr": GridSearchCV(SVR(kernel="rbf"), {"C": SVR_CS}, cv=folds,
                                scoring="neg_mean_absolute_percentage_error"),
        }
        for search in searches.values():
            search.fit(X, y)
        self.chosen_ = max(searches, key=lambda name: searches[name].best_score_)
        self.model_ = searches[self.chosen_].best_estimator_
        self.cv_mape_ = -100 * float(searches[self.chosen_].best_score_)
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict(validate_data(self, X, reset=False, dtype=np.float64))
