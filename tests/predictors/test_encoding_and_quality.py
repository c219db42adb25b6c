from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline

from elasticnas.predictors import ArchEncoder, measurement_noise, quality_report
from elasticnas.supernet import ConfigError, InvalidArchitectureError, create_space
from elasticnas.supernet.families.mobilenetv3 import MobileNetV3Arch as Arch

SPACE = create_space("tiny_mbv3", num_classes=10, in_channels=1)


def _arch(depths, kernel=5, expand=3, resolution=24):
    n = SPACE.num_slots
    return Arch(resolution, tuple(depths), (kernel,) * n, (expand,) * n)


def test_onehot_matches_hand_encoding_and_inactive_blocks_are_absent():
    assert SPACE.kernel_choices == (3, 5, 7) and SPACE.expand_choices == (2, 3, 4)
    depths = [SPACE.depth_choices[0]] * SPACE.num_stages
    row = ArchEncoder(SPACE).fit().transform([_arch(depths)])[0]
    names = ArchEncoder(SPACE).fit().get_feature_names_out()
    assert len(row) == len(names) == len(SPACE.resolutions) + SPACE.num_slots * 6
    active = {f"resolution={24}"}
    for stage in range(SPACE.num_stages):
        for block in range(depths[stage]):
            slot = SPACE.slot_index(stage, block)
            active |= {f"kernel_sizes[{slot}]=5", f"expand_ratios[{slot}]=3"}
    assert {n for n, v in zip(names, row, strict=True) if v == 1} == active
    assert set(np.unique(row)) == {0.0, 1.0}


def test_ordinal_encoding_ranks_choices_and_zeroes_inactive_blocks():
    depths = [SPACE.depth_choices[-1]] + [SPACE.depth_choices[0]] * (SPACE.num_stages - 1)
    row = ArchEncoder(SPACE, "ordinal").fit().transform([_arch(depths, kernel=7, expand=2, resolution=20)])[0]
    names = list(ArchEncoder(SPACE, "ordinal").fit().get_feature_names_out())
    value = dict(zip(names, row, strict=True))
    assert value["resolution"] == 1 / len(SPACE.resolutions)
    assert value["depths[0]"] == 1.0
    assert value["kernel_sizes[0]"] == 1.0 and value["expand_ratios[0]"] == pytest.approx(1 / 3)
    last_slot_of_stage_1 = SPACE.slot_index(1, SPACE.max_depth - 1)
    assert value[f"kernel_sizes[{last_slot_of_stage_1}]"] == 0.0


def test_equal_active_networks_encode_equally_from_any_input_form():
    arch = SPACE.sample(3)
    forms = [arch, arch.to_dict(), arch.to_json(), arch.to_dict("ofa"), json.dumps(arch.to_dict("ofa"))]
    for kind in ("onehot", "ordinal"):
        encoded = ArchEncoder(SPACE, kind).fit().transform(forms)
        assert (encoded == encoded[0]).all()


def test_pipeline_with_ridge_fits_archs_and_predicts():
    archs = SPACE.sample(0, n=60)
    y = np.array([a.resolution + sum(a.depths) for a in archs], dtype=float)
    model = make_pipeline(ArchEncoder(SPACE), Ridge(alpha=1e-6)).fit(archs, y)
    assert np.allclose(model.predict(archs), y, atol=1e-3)


def test_encoder_errors_name_what_is_wrong():
    with pytest.raises(NotFittedError):
        ArchEncoder(SPACE).transform([SPACE.max()])
    with pytest.raises(ConfigError, match="onehot"):
        ArchEncoder(SPACE, kind="binary").fit()
    with pytest.raises(ConfigError, match="search space"):
        ArchEncoder().fit()
    bad = SPACE.max().to_dict()
    bad["kernel_sizes"] = [9] * SPACE.num_slots
    with pytest.raises(InvalidArchitectureError, match="kernel_sizes"):
        ArchEncoder(SPACE).fit().transform([bad])
    with pytest.raises(InvalidArchitectureError, match="ArchEncoder first"):
        ArchEncoder(SPACE).fit().transform(np.zeros((3, 4)))


def test_quality_report_against_hand_computed_values():
    report = quality_report([1, 2, 3, 4], [1, 2, 4, 3], kind="accuracy")
    assert report["kendall_tau"] == pytest.approx(4 / 6)
    assert report["spearman_rho"] == pytest.approx(0.8)
    assert report["rmse"] == pytest.approx(np.sqrt(0.5))
    assert report["mape"] == pytest.approx(100 * (1 / 3 + 1 / 4) / 4)
    assert report["within"] == 100.0
    latency = quality_report([10.0, 20.0], [10.5, 23.0], kind="latency")
    assert latency["within"] == 50.0 and latency["tolerance"] == "±10%"
    bits = quality_report([2.50, 2.60, 2.70, 2.80], [2.54, 2.70, 2.72, 2.70], kind="bits")  # errors .04 .1 .02 .1
    assert bits["within"] == 50.0 and bits["tolerance"] == "±0.05 bits"
    with pytest.raises(ConfigError, match="accuracy"):
        quality_report([1, 2], [1, 2], kind="flops")
    with pytest.raises(ConfigError, match="equally long"):
        quality_report([1, 2], [1, 2, 3])


def test_measurement_noise_against_hand_computed_values():
    noise = measurement_noise(measured=[90.0, 92.0, 94.0], standard_errors=[1.0, 1.0, 2.0],
                              half_a=[89.0, 93.0, 94.0], half_b=[91.0, 90.0, 95.0])
    assert noise["retest_tau_halves"] == pytest.approx(1 / 3)  # pairs 1-2 discordant, 1-3 and 2-3 concordant
    r = np.sin(np.pi / 6)  # 0.5, so Spearman-Brown gives 2 * 0.5 / 1.5 = 2 / 3
    assert noise["retest_tau"] == pytest.approx(2 / np.pi * np.arcsin(2 / 3)) and r == pytest.approx(0.5)
    assert noise["noise_share"] == pytest.approx(2.0 / 4.0)  # mean(1, 1, 4) / var(90, 92, 94) with ddof 1
    assert noise["mean_se"] == pytest.approx(4 / 3)
    unknown = measurement_noise([90.0, 92.0], [np.nan, np.nan], [np.nan, np.nan], [np.nan, np.nan])
    assert all(np.isnan(v) for v in unknown.values())


def test_subnets_measured_alike_have_nothing_to_rank_and_say_so():
    """Equal scores summed in different orders differ by rounding; that is no spread for noise to be a share of."""
    import pandas as pd

    from elasticnas.measure import describe_accuracy_noise

    alike = [22.1 + 1e-14, 22.1, 22.1 - 1e-14]
    noise = measurement_noise(alike, [0.3, 0.3, 0.3], [22.0, 22.2, 22.1], [22.2, 22.0, 22.1])
    assert noise["noise_share"] == float("inf")
    line = describe_accuracy_noise(pd.DataFrame([{"target": "val_top1", "kendall_tau": 0.0, **noise}]))
    assert "no ranking to learn" in line and "%" not in line
