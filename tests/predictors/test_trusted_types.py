"""Loading a predictor builds only the types the project's own predictors are made of."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
import torch
from sklearn.pipeline import make_pipeline
from torch import nn

from elasticnas.cli import main
from elasticnas.core.errors import ConfigError
from elasticnas.predictors import ArchEncoder, AutoPredictor, load_predictor, save_predictor
from elasticnas.predictors.estimators import GaussianProcessPredictor, list_estimators
from elasticnas.predictors.persistence import FORMAT_VERSION, trusted_types
from elasticnas.supernet import create_space
from elasticnas.supernet.families.graph import elasticize


def _spaces():
    small = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 10))
    graph = elasticize(small, torch.randn(2, 1, 12, 12)).space
    families = [create_space(name, num_classes=10) for name in ("tiny_mbv3", "tiny_resnet", "tiny_vit")]
    return [*families, create_space("tiny_gpt", num_classes=256), graph]


@pytest.mark.slow
def test_what_fit_saves_for_every_estimator_and_family_is_exactly_trusted(tmp_path):
    warnings.filterwarnings("ignore")
    saved, spaces = set(), _spaces()
    graph_space = spaces[-1]
    for space in spaces:
        archs = space.sample(np.random.default_rng(0), n=24)
        y = np.linspace(80, 95, len(archs))
        models = [AutoPredictor(candidates=(name,), n_trials=1, cv=2) for name in list_estimators()]
        for model in [*models, GaussianProcessPredictor(kernel="matern")]:
            model = make_pipeline(ArchEncoder(space, "onehot"), model)
            save_predictor(model.fit(archs, y), tmp_path / "p.skops", space=space, target="val_top1")
            saved |= set(sio.get_untrusted_types(file=tmp_path / "p.skops"))
            assert load_predictor(tmp_path / "p.skops", space) is not None
    assert saved <= trusted_types()
    # nothing trusted that no predictor is made of, but the records of genes this small graph lacks
    unused = {f"{cls.__module__}.{cls.__qualname__}" for cls in type(graph_space).saved_parts}
    assert trusted_types() - saved <= unused


def _gadget(tmp_path, thing) -> str:
    """A predictor file whose model is ``thing`` (a function or class skops can write by name)."""
    space = create_space("tiny_mbv3", num_classes=10)
    payload = {"format_version": FORMAT_VERSION, "space_name": space.name, "space_fingerprint": space.fingerprint,
               "target": "val_top1", "report": {}, "model": thing}
    buffer = io.BytesIO()
    sio.dump(payload, buffer)
    path = tmp_path / "gadget.skops"
    path.write_bytes(buffer.getvalue())
    return str(path)


def _gadgets():
    import numpy.testing._private.utils as numpy_testing
    import sklearn.utils

    from elasticnas.core import atomic
    from elasticnas.hardware.reference import ReferenceClock

    return {"numpy function that runs a string": numpy_testing.runstring,
            "scikit-learn function": sklearn.utils.check_random_state,
            "elasticnas function that writes files": atomic.atomic_write_text,
            "elasticnas class that is no predictor part": ReferenceClock}


@pytest.mark.parametrize("kind", sorted(_gadgets()))
def test_a_predictor_file_naming_a_function_or_foreign_class_under_a_trusted_prefix_is_refused(tmp_path, kind):
    path = _gadget(tmp_path, _gadgets()[kind])
    with pytest.raises(ConfigError, match="not made of") as error:
        load_predictor(path)
    assert "\n" not in str(error.value)


def test_search_refuses_a_gadget_predictor_in_one_line(run_copy, capsys):
    import numpy.testing._private.utils as numpy_testing

    (run_copy / "predictors").mkdir(exist_ok=True)
    path = run_copy / "predictors" / "accuracy.skops"
    path.write_bytes(Path(_gadget(run_copy.parent, numpy_testing.runstring)).read_bytes())
    assert main(["search", str(run_copy), "--predicted-evals", "20"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "runstring" in err, err
