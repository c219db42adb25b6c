"""Saving and loading predictors with skops (no pickle), bound to the space they were fitted on.

A saved predictor is one ``.skops`` file holding the fitted model together with the
fingerprint of its space and the name of its target; ``load_predictor`` refuses to hand it
to another space. Loading builds only the types the project's own predictors are made of
(:func:`trusted_types`, an exact list: a prefix such as ``numpy.`` would also admit functions
that run code) and names any other type the file holds instead of building it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import skops.io as sio

from elasticnas.core.atomic import atomic_write_bytes
from elasticnas.core.errors import ConfigError
from elasticnas.core.files import reading
from elasticnas.supernet.space import SearchSpace

FORMAT_VERSION = 1
# The fitted parts of the built-in estimators that skops does not trust by default.
_SKLEARN_PARTS = frozenset({
    "sklearn.gaussian_process.kernels.ConstantKernel", "sklearn.gaussian_process.kernels.Matern",
    "sklearn.gaussian_process.kernels.Product", "sklearn.gaussian_process.kernels.RBF",
    "sklearn.gaussian_process.kernels.Sum", "sklearn.gaussian_process.kernels.WhiteKernel",
    "sklearn.tree._tree.Tree",
})


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def trusted_types() -> frozenset[str]:
    """Every type a saved predictor may hold beyond skops' own defaults: the encoder, the
    auto-predictor and each registered estimator class, each registered family's space class
    and the parts it declares it holds (``saved_parts``), and the fitted scikit-learn parts of
    the built-in estimators. Classes only: no function."""
    from elasticnas.predictors.auto import AutoPredictor
    from elasticnas.predictors.encoding import ArchEncoder
    from elasticnas.predictors.estimators import ESTIMATORS
    from elasticnas.supernet.catalogue import FAMILIES

    spaces = [FAMILIES.get(name).space for name in FAMILIES.names()]
    classes = [AutoPredictor, ArchEncoder, *(ESTIMATORS.get(name)[0] for name in ESTIMATORS.names()),
               *spaces, *(part for space in spaces for part in getattr(space, "saved_parts", ()))]
    return frozenset(_qualified(cls) for cls in classes) | _SKLEARN_PARTS


def save_predictor(model: Any, path: str | os.PathLike, *, space: SearchSpace, target: str,
                   report: dict | None = None) -> Path:
    """Write ``model`` (fitted, predicting ``target`` for architectures of ``space``) to ``path``."""
    payload = {"format_version": FORMAT_VERSION, "space_name": space.name, "space_fingerprint": space.fingerprint,
               "target": target, "report": dict(report or {}), "model": model}
    buffer = io.BytesIO()
    sio.dump(payload, buffer)
    return atomic_write_bytes(Path(path), buffer.getvalue())


def read_predictor(path: str | os.PathLike) -> dict[str, Any]:
    """The saved payload: ``model``, ``target``, ``report``, ``space_name``, ``space_fingerprint``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no predictor at {path}")
    with reading(path, "predictor file (skops; refit with `elasticnas fit`)"):
        untrusted = sio.get_untrusted_types(file=path)
        foreign = sorted(set(untrusted) - trusted_types())
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise ConfigError(f"{path} holds types that elasticnas predictors are not made of, so it is not "
                              f"loaded: {shown}")
        payload = sio.load(path, trusted=untrusted)
        fields = ("format_version", "space_name", "space_fingerprint", "target", "report", "model")
        if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION or \
                any(f not in payload for f in fields):
            raise ConfigError(f"{path} is not an elasticnas predictor file (format {FORMAT_VERSION})")
        return payload


def load_predictor(path: str | os.PathLike, space: SearchSpace | None = None) -> Any:
    """The fitted model saved at ``path``; with ``space``, refuse it unless it was fitted on that space."""
    payload = read_predictor(path)
    if space is not None and payload["space_fingerprint"] != space.fingerprint:
        raise ConfigError(f"predictor {path} was fitted on space {payload['space_name']!r} (fingerprint "
                          f"{payload['space_fingerprint']}), not on {space.name!r} (fingerprint {space.fingerprint})")
    return payload["model"]
