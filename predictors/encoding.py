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

from elasticnas.supernet.arch import Arch
from elasticnas.supernet.errors import ConfigError, InvalidArchitectureError
from elasticnas.supernet.space import MobileNetV3Space

ENCODINGS = ("onehot", "ordinal")


def as_archs(space: MobileNetV3Space, X) -> list[Arch]:
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

    ``kind="onehot"``: the resolution one-hot, then per block slot its kernel size and its
    expand ratio one-hot (all zeros for an inactive block). ``kind="ordinal"``: the
    resolution, each stage's depth and each slot's kernel and expand choice as their rank
    scaled to (0, 1] (0 for an inactive block); fewer features, suited to trees.
    """

    def __init__(self, space: MobileNetV3Space | None = None, kind: str = "onehot"):
        self.space = space
        self.kind = kind

    def _check_params(self) -> MobileNetV3Space:
        if not isinstance(self.space, MobileNetV3Space):
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


def feature_names(space: MobileNetV3Space, kind: str) -> list[str]:
    slots = range(space.num_slots)
    if kind == "ordinal":
        return (["resolution"] + [f"depth[{s}]" for s in range(space.num_stages)]
                + [f"kernel[{j}]" for j in slots] + [f"expand[{j}]" for j in slots])
    names = [f"resolution={r}" for r in space.resolutions] if len(space.resolutions) > 1 else []
    for j in slots:
        names += [f"kernel[{j}]={k}" for k in space.kernel_choices]
        names += [f"expand[{j}]={e}" for e in space.expand_choices]
    return names


def encode_archs(space: MobileNetV3Space, archs: list[Arch], kind: str = "onehot") -> np.ndarray:
    """Vectorised encoding of validated architectures (see :class:`ArchEncoder`)."""
    genes = space.encode(archs) if archs else np.zeros((0, len(space.encoding_upper_bounds)), dtype=np.int64)
    s, n = space.num_stages, space.num_slots
    depth_index, kernel_index, expand_index = genes[:, 1 : 1 + s], genes[:, 1 + s : 1 + s + n], genes[:, 1 + s + n :]
    depths = np.asarray(space.depth_choices)[depth_index]
    block = np.tile(np.arange(space.max_depth), s)
    active = block[None, :] < np.repeat(depths, space.max_depth, axis=1)
    if kind == "ordinal":
        def rank(index, count):
            return (index + 1) / count

        resolution = rank(genes[:, :1], len(space.resolutions))
        return np.hstack([
            resolution,
            rank(depth_index, len(space.depth_choices)),
            np.where(active, rank(kernel_index, len(space.kernel_choices)), 0.0),
            np.where(active, rank(expand_index, len(space.expand_choices)), 0.0),
        ]).astype(np.float64)
    nk, ne = len(space.kernel_choices), len(space.expand_choices)
    kernels = np.eye(nk)[kernel_index] * active[..., None]
    expands = np.eye(ne)[expand_index] * active[..., None]
    per_slot = np.concatenate([kernels, expands], axis=2).reshape(len(archs), n * (nk + ne))
    parts = [np.eye(len(space.resolutions))[genes[:, 0]]] if len(space.resolutions) > 1 else []
    return np.hstack([*parts, per_slot]).astype(np.float64)
