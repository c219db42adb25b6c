from __future__ import annotations

import numpy as np
import pytest
import skops.io as sio
from sklearn.pipeline import make_pipeline

from elasticnas.hardware import count_params
from elasticnas.ofa_trace import load_reference_trace, reference_trace_path
from elasticnas.predictors import ArchEncoder, GaussianProcessPredictor, load_predictor, read_predictor, save_predictor
from elasticnas.supernet import ConfigError, create_space

SPACE = create_space("tiny_mbv3", num_classes=10, in_channels=1)


class Foreign:
    pass


def test_saved_predictor_round_trips_and_is_bound_to_its_space(tmp_path):
    archs = SPACE.sample(0, n=40)
    y = np.array([sum(a.depths) + a.resolution / 10 for a in archs])
    model = make_pipeline(ArchEncoder(SPACE, "ordinal"), GaussianProcessPredictor(random_state=0)).fit(archs, y)
    path = save_predictor(model, tmp_path / "accuracy.skops", space=SPACE, target="val_top1", report={"n": 40})
    loaded = load_predictor(path, SPACE)
    assert np.array_equal(loaded.predict(archs), model.predict(archs))
    assert read_predictor(path)["report"] == {"n": 40}
    other = create_space("tiny_mbv3", num_classes=100, in_channels=1)
    with pytest.raises(ConfigError, match="fingerprint"):
        load_predictor(path, other)


def test_loading_refuses_files_with_foreign_types(tmp_path):
    path = tmp_path / "bad.skops"
    sio.dump({"format_version": 1, "model": Foreign()}, path)
    with pytest.raises(ConfigError, match="Foreign"):
        read_predictor(path)
    with pytest.raises(FileNotFoundError):
        read_predictor(tmp_path / "missing.skops")


@pytest.mark.skipif(reference_trace_path() is None, reason="../shared/refdata is not present")
def test_reference_trace_parameter_counts_match_the_space_exactly():
    trace = load_reference_trace(deduplicate=False)
    space = create_space("ofa_mbv3_w10", num_classes=1000)
    assert len(trace) == 364
    counted = [count_params(space, space.canonical(text)) for text in trace["arch"]]
    assert counted == trace["params"].tolist()
    assert len(load_reference_trace()) == 362


def test_a_predictor_saves_after_its_space_has_counted_costs(tmp_path):
    from elasticnas.search import cost_objective

    archs = SPACE.sample(1, n=30)
    macs = np.asarray(cost_objective(SPACE, "macs").fn(archs), dtype=float)  # fills the space's layer tables
    model = make_pipeline(ArchEncoder(SPACE, "ordinal"), GaussianProcessPredictor(random_state=0)).fit(archs, macs)
    path = save_predictor(model, tmp_path / "macs.skops", space=SPACE, target="macs")
    assert np.allclose(load_predictor(path, SPACE).predict(archs), model.predict(archs))
