"""Architectures as feature vectors: a scikit-learn transformer over canonical architectures.

>>> from sklearn.linear_model import Ridge
>>> from sklearn.pipeline import make_pipeline
>>> model = make_pipeline(ArchEncoder(space), Ridge()).fit(archs, top1)  # doctest: +SKIP

Blocks that a stage's depth switches off are *absent*: all their features are zero, as in
Once-for-All's accuracy-predictor encoding, so two architectures with the same active
network always get the same vector.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from elasticnas.core.errors import ConfigError, InvalidArchitectureError
from elasticnas.supernet.arch import Arch
from elasticnas.supernet.space import SearchSpace

ENCODINGS = ("onehot", "ordinal")


def as_archs(space: SearchSpace, X) -> list[Arch]:
    """Canonical architectures from Arch objects, dicts or JSON strings (a list, array or Series)."""
    if isinstance(X, (Arch, str, Mapping)):
        X = [X]
    values = X.tolist() if hasattr(X, "tolist") and not isinstance(X, list) else list(X)
    if values and isinstance(values[0], list):  # a one-column 2-D array or frame
        if any(len(row) != 1 for row in values):
            raise InvalidArchitectureError("expected one architecture per row (Arch, dict or JSON text), "
                                           "not a numeric feature matrix; encode with ArchEncoder first")
        values = [row[0] for row in values]
    return [space.canonical(a) for a in values]


class ArchEncoder(TransformerMixin, BaseEstimator):
    """Encode architectures of ``space`` as float features.

    ``kind="onehot"``: the resolution one-hot, then per block position its genes (e.g. kernel
    size and expand ratio) one-hot, all zeros for an inactive block. ``kind="ordinal"``:
    every gene as its choice's rank scaled to (0, 1] (0 when inactive); fewer features,
    suited to trees.
    """

    def __init__(self, space: SearchSpace | None = None, kind: str = "onehot"):
        self.space = space
        self.kind = kind

    def _check_params(self) -> SearchSpace:
        if not isinstance(self.space, SearchSpace):
            raise ConfigError(f"ArchEncoder needs a search space, but got space={self.space!r}")
        if self.kind not in ENCODINGS:
            raise ConfigError(f"unknown encoding kind={self.kind!r}; choose one of {list(ENCODINGS)}")
        return self.space

    def fit(self, X: Iterable | None = None, y=None) -> ArchEncoder:
        space = self._check_params()
        self.space_fingerprint_ = space.fingerprint
        self.feature_names_ = np.asarray(feature_names(space, self.kind), dtype=object)
        self.n_features_out_ = len(self.feature_names_)
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "feature_names_")
        space = self._check_params()
        if space.fingerprint != self.space_fingerprint_:
            raise ConfigError("the encoder's space changed after fit; refit it")
        return encode_archs(space, as_archs(space, X), self.kind)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "feature_names_")
        return self.feature_names_.copy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.categorical = True
        tags.requires_fit = False
        return tags


def _onehot_columns(space: SearchSpace) -> list[int]:
    """Gene columns one-hot encoded, position-major (slot j's genes side by side).

    Genes that switch others off (depths) are left out: the all-zero blocks of the genes
    they control already say which blocks are off, as in Once-for-All's encoding. Genes
    with a single choice are left out unless something can switch them off.
    """
    controllers = {g.active_if[0] for g in space.genes if g.active_if is not None}
    fields = space.arch_type.field_names()
    keep = [c for c, g in enumerate(space.genes)
            if c not in controllers and (len(g.choices) > 1 or g.active_if is not None)]
    return sorted(keep, key=lambda c: (-1 if space.genes[c].index is None else space.genes[c].index,
                                       fields.index(space.genes[c].field)))


def feature_names(space: SearchSpace, kind: str) -> list[str]:
    if kind == "ordinal":
        return [g.name for g in space.genes]
    return [f"{space.genes[c].name}={v}" for c in _onehot_columns(space) for v in space.genes[c].choices]


def encode_archs(space: SearchSpace, archs: list[Arch], kind: str = "onehot") -> np.ndarray:
    """Vectorised encoding of validated architectures (see :class:`ArchEncoder`)."""
    genes = space.encode(archs) if archs else np.zeros((0, len(space.genes)), dtype=np.int64)
    active = space.active_mask(genes)
    counts = np.array([len(g.choices) for g in space.genes])
    if kind == "ordinal":
        return np.where(active, (genes + 1) / counts, 0.0).astype(np.float64)
    parts = [np.eye(counts[c])[genes[:, c]] * active[:, c, None] for c in _onehot_columns(space)]
    return np.hstack(parts).astype(np.float64) if parts else np.zeros((len(genes), 0))
