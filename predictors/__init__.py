"""Architecture encodings and accuracy/latency predictors (``elasticnas.predictors``).

Predictors are scikit-learn estimators over encoded architectures:

>>> from sklearn.pipeline import make_pipeline
>>> model = make_pipeline(ArchEncoder(space, "ordinal"), AutoPredictor(n_trials=40, seed=0))  # doctest: +SKIP
>>> model.fit(archs, top1).predict(space.sample(0, n=5))  # doctest: +SKIP
"""

from elasticnas.predictors.auto import AutoPredictor
from elasticnas.predictors.baseline import DynastBaselinePredictor
from elasticnas.predictors.encoding import ENCODINGS, ArchEncoder, as_archs, encode_archs
from elasticnas.predictors.estimators import (
    ESTIMATORS,
    GaussianProcessPredictor,
    GradientBoostingPredictor,
    MLPPredictor,
    RandomForestPredictor,
    RidgePredictor,
    SVRPredictor,
    create_estimator,
    list_estimators,
)
from elasticnas.predictors.persistence import load_predictor, read_predictor, save_predictor
from elasticnas.predictors.quality import (
    cross_validated_report,
    doubled_length_tau,
    fit_with_folds,
    kendall_tau,
    measurement_noise,
    out_of_fold_predictions,
    quality_report,
)

__all__ = [
    "ENCODINGS",
    "ESTIMATORS",
    "ArchEncoder",
    "AutoPredictor",
    "DynastBaselinePredictor",
    "GaussianProcessPredictor",
    "GradientBoostingPredictor",
    "MLPPredictor",
    "RandomForestPredictor",
    "RidgePredictor",
    "SVRPredictor",
    "as_archs",
    "create_estimator",
    "cross_validated_report",
    "encode_archs",
    "fit_with_folds",
    "kendall_tau",
    "list_estimators",
    "load_predictor",
    "out_of_fold_predictions",
    "doubled_length_tau",
    "measurement_noise",
    "quality_report",
    "read_predictor",
    "save_predictor",
]
