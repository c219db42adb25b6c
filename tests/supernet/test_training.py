from __future__ import annotations

import math
import os
import signal

import numpy as np
import pandas as pd
import pytest
import torch

from elasticnas.core.checkpoint import load_checkpoint, save_checkpoint
from elasticnas.experiment import SupernetConfig, build_run, build_supernet_of, load_experiment, train_experiment
from elasticnas.supernet import ConfigError
from elasticnas.supernet.batches import resize
from elasticnas.supernet.evaluation import EvalData, evaluate, recalibrate_bn, score
from elasticnas.supernet.regularisation import regularisation_off
from elasticnas.supernet.samplers import list_strategies
from elasticnas.supernet.training import OptimConfig, Trainer, TrainingInterrupted, lr_multiplier, warmup_cosine
from tests.conftest import image_presets

FAST = ["data.name=digits", "data.batch_size=256", "train.bn_calibration_images=256",
        "train.bn_calibration_batch_size=128"]

# Two of the presets' resolutions, the smaller ones: training still meets elastic resolution,
# in a third less time.
SMALL_IMAGES = "supernet.overrides.resolutions=[20,24]"


def _config(*extra):
    return load_experiment("mnist_sandwich", [*FAST, "train.epochs=2", SMALL_IMAGES, *extra])


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def _assert_identical(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_same_config_and_seed_give_bit_identical_weights(tmp_path):
    config = _config("train.epochs=1")
    first, _ = train_experiment(config, tmp_path / "a", progress=False)
    second, _ = train_experiment(config, tmp_path / "b", progress=False)
    _assert_identical(_weights(first), _weights(second))
    third, _ = train_experiment(_config("train.epochs=1", "train.seed=1"), tmp_path / "c", progress=False)
    assert not torch.equal(third.model.stem.conv.weight, first.model.stem.conv.weight)


@pytest.mark.slow
def test_run_interrupted_mid_epoch_by_a_signal_resumes_bit_identically(tmp_path):
    config = _config()
    reference, reference_metrics = train_experiment(config, tmp_path / "full", progress=False)

    def kill_at_step_five(trainer, step):
        if step == 5:  # the second epoch's first step: a mid-epoch stop
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted, match="--resume"):
        train_experiment(config, tmp_path / "cut", progress=False, on_step=kill_at_step_five)
    state = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert (state["epoch"], state["step_in_epoch"]) == (1, 1)
    resumed, resumed_metrics = train_experiment(config, tmp_path / "cut", resume=True, progress=False)
    _assert_identical(_weights(reference), _weights(resumed))
    columns = [c for c in reference_metrics if c != "seconds"]
    pd.testing.assert_frame_equal(reference_metrics[columns], resumed_metrics[columns])
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.slow
def test_outputs_of_a_run(tmp_path):
    trainer, metrics = train_experiment(_config(), tmp_path, progress=False)
    assert (tmp_path / "config.yaml").exists() and (tmp_path / "training_curves.png").stat().st_size > 1000
    saved = pd.read_csv(tmp_path / "metrics.csv")
    assert list(saved["epoch"]) == [1, 2]
    for column in ("train_loss", "lr", "seconds", "val_top1_max", "val_top1_middle", "val_top1_min"):
        assert column in saved and saved[column].notna().all()
    assert saved["val_top1_max"].iloc[-1] > 20  # better than chance (10%) after two short epochs
    with pytest.raises(ConfigError, match="--resume"):
        train_experiment(_config(), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="optim.lr"):
        train_experiment(_config("optim.lr=0.5"), tmp_path, resume=True, progress=False)


@pytest.mark.slow
def test_a_checkpoint_from_before_a_sampler_option_existed_resumes_and_a_changed_option_is_refused(tmp_path):
    config = load_experiment("mnist_uniform", [*FAST, "train.epochs=1", SMALL_IMAGES])
    train_experiment(config, tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["sampler"]["options"].pop("with_smallest") is False  # as written before the option was added
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    train_experiment(config, tmp_path, resume=True, progress=False)
    state["sampler"]["options"]["with_smallest"] = True
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    with pytest.raises(ConfigError, match="with_smallest"):
        train_experiment(config, tmp_path, resume=True, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_strategies())
def test_every_strategy_trains(tmp_path, name):
    config = load_experiment(f"mnist_{name}", [*FAST, "train.epochs=1", SMALL_IMAGES])
    trainer, metrics = train_experiment(config, tmp_path, progress=False)
    assert metrics["train_loss"].notna().all() and metrics["val_top1_max"].iloc[0] >= 0
    if name == "progressive_shrinking":  # four steps: one per phase, teacher taken after the first
        assert trainer.phase == "expand" and trainer.teacher is not None


@pytest.mark.slow
@pytest.mark.parametrize("supernet", [n for n in image_presets("tiny_*") if n != SupernetConfig().name])
@pytest.mark.parametrize("name", list_strategies())
def test_every_strategy_trains_every_small_preset(tmp_path, name, supernet):
    config = load_experiment(f"mnist_{name}", [*FAST, "train.epochs=1", f"supernet.name={supernet}", SMALL_IMAGES])
    trainer, metrics = train_experiment(config, tmp_path, progress=False)
    assert metrics["train_loss"].notna().all() and metrics["val_top1_max"].iloc[0] >= 0
    if name == "progressive_shrinking":
        assert trainer.phase == trainer.space.shrink_order[-1] and trainer.teacher is not None


def test_performance_aware_scores_candidates_without_dropout_or_touching_bn(tmp_path):
    config = load_experiment("mnist_performance_aware", [*FAST, SMALL_IMAGES])
    splits, supernet = build_run(config)
    assert supernet.space.dropout > 0  # else the test could not tell dropout on from off
    trainer = Trainer(supernet, splits.train, None, train=config.train, optim=config.optim, sampler=config.sampler,
                      batch_size=config.data.batch_size, run_dir=tmp_path, progress=False)
    trainer.model.train()
    images, labels = torch.stack([splits.train[i][0] for i in range(32)]), torch.arange(32) % 10
    archs = [supernet.space.max(), supernet.space.min()]
    before = _weights(trainer)
    first, second = trainer._score(archs, images, labels), trainer._score(archs, images, labels)
    assert first.tolist() == second.tolist()  # a random dropout mask would make the two differ
    _assert_identical(before, trainer.model.state_dict())
    with torch.no_grad(), regularisation_off(trainer.model):
        logits = trainer.model(resize(images, archs[0].resolution), archs[0])
    by_hand = torch.nn.functional.cross_entropy(logits, labels)
    assert first[0] == pytest.approx(float(by_hand), rel=1e-6)


def test_checkpoint_of_another_supernet_is_refused(tmp_path):
    train_experiment(_config("train.epochs=1"), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="fingerprint"):
        load_checkpoint(tmp_path / "checkpoint.pt", space_fingerprint="0" * 16)


def test_score_counts_each_half_of_the_images_and_the_standard_error_by_hand():
    labels = torch.tensor([0, 1, 0, 0, 0, 1])  # class 0 predicted for every image
    result = score(lambda x: torch.tensor([[1.0, 0.0]]).expand(len(x), 2), torch.zeros(6, 1), labels, batch_size=4)
    assert result.top1 == pytest.approx(400 / 6) and result.images == 6
    assert result.top1_halves == pytest.approx((100.0, 100 / 3))  # images 0, 2, 4 and 1, 3, 5 (across batches)
    assert result.top1_se == pytest.approx(100 * ((2 / 3) * (1 / 3) / 6) ** 0.5)
    right, wrong = math.log(1 + math.exp(-1)), math.log(1 + math.exp(1))  # cross-entropy of the two cases
    assert result.loss_halves == pytest.approx((right, (2 * wrong + right) / 3))
    assert result.loss_se == pytest.approx(float(np.std([right, wrong, right, right, right, wrong], ddof=1)) / 6**0.5)
    assert result.bits_se == pytest.approx(result.loss_se / math.log(2))


def test_evaluation_recalibrates_exactly_without_touching_the_supernet():
    config = _config()
    splits, supernet = build_run(config)
    data = EvalData.from_datasets(splits.train, splits.val, calibration_images=256, calibration_batch_size=128)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    result = evaluate(supernet, supernet.space.min(), data)
    _assert_identical(before, supernet.state_dict())
    assert 0 <= result.top1 <= 100 and result.images == len(splits.val)
    # the stem's batch norm sees the stem conv's output: its recalibrated mean is the mean over all images
    arch = supernet.space.max()
    model = recalibrate_bn(supernet.extract(arch), data.at(arch.resolution, torch.device("cpu"))[0], 128)
    with torch.no_grad():
        conv_out = model[0].conv(data.at(arch.resolution, torch.device("cpu"))[0])
    torch.testing.assert_close(model[0].bn.running_mean, conv_out.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)


def test_warmup_cosine_schedule_by_hand():
    assert warmup_cosine(0, 100, 10, 0.0) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10, 0.0) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10, 0.0) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10, 0.0) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10, 0.2) == pytest.approx(0.2)


def test_exponential_schedule_with_a_constant_ending_by_hand():
    optim = OptimConfig(schedule="exponential", min_lr_ratio=0.01, constant_after=0.5)
    assert lr_multiplier(4, 110, 10, optim) == pytest.approx(0.5)  # warm-up
    assert lr_multiplier(10, 110, 10, optim) == pytest.approx(1.0)
    assert lr_multiplier(35, 110, 10, optim) == pytest.approx(0.1)  # halfway to the ending: 0.01 ** 0.5
    assert lr_multiplier(60, 110, 10, optim) == pytest.approx(0.01)
    assert lr_multiplier(109, 110, 10, optim) == pytest.approx(0.01)  # constant to the end
    with pytest.raises(ConfigError, match="constant ending"):
        OptimConfig(schedule="exponential", min_lr_ratio=0.0)
    with pytest.raises(ConfigError, match="cosine or exponential"):
        OptimConfig(schedule="step")


@pytest.mark.parametrize("config", ["mnist_sandwich", "mnist_resnet_sandwich"])
def test_zero_residual_norms_silence_every_residual_branch_at_the_start(config):
    plain = build_supernet_of(load_experiment(config, ["init.zero_residual_norms=false"]), 10, 1)
    supernet = build_supernet_of(load_experiment(config, ["init.zero_residual_norms=true"]), 10, 1)
    norms = supernet.residual_output_norms()
    assert len(norms) == len(plain.residual_output_norms()) > 0
    assert all(float(n.weight.abs().max()) == 0 for n in norms)
    assert all(float(n.weight.min()) == 1 for n in plain.residual_output_norms())
    outputs = []
    hooks = [n.register_forward_hook(lambda module, args, out: outputs.append(out)) for n in norms]
    arch = supernet.space.max()
    supernet.train()(torch.randn(4, 1, arch.resolution, arch.resolution), arch)
    for hook in hooks:
        hook.remove()
    assert len(outputs) == len(norms) and all(float(out.abs().max()) == 0 for out in outputs)


def test_zero_residual_norms_leave_a_family_without_them_as_it_is_and_say_so(caplog):
    config = load_experiment("mnist_vit_sandwich")
    plain = build_supernet_of(config, 10, 1).state_dict()
    zeroed = build_supernet_of(load_experiment("mnist_vit_sandwich", ["init.zero_residual_norms=true"]), 10, 1)
    assert all(torch.equal(plain[k], v) for k, v in zeroed.state_dict().items())
    assert "no batch norm ending a residual branch" in caplog.text


@pytest.mark.parametrize("config, rate", [("mnist_sandwich", "supernet.overrides.dropout=0.5"),
                                          ("mnist_vit_sandwich", "supernet.overrides.drop_path=0.5")])
def test_regularisation_off_turns_dropout_and_stochastic_depth_off_in_training(config, rate):
    supernet = build_supernet_of(load_experiment(config, [rate]), 10, 1).train()
    arch = supernet.space.min()
    x = torch.randn(8, 1, arch.resolution, arch.resolution, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.equal(supernet(x, arch), supernet(x, arch))  # dropped at random
        with regularisation_off(supernet):
            assert torch.equal(supernet(x, arch), supernet(x, arch))  # batch norm still on batch statistics
        assert not torch.equal(supernet(x, arch), supernet(x, arch))


@pytest.mark.slow
def test_bignas_recipe_trains_and_ends_at_its_constant_learning_rate(tmp_path):
    recipe = ["init.zero_residual_norms=true", "train.regularise_largest_only=true", "optim.schedule=exponential",
              "optim.min_lr_ratio=0.05", "optim.constant_after=0.5", "optim.lr=0.1"]
    trainer, metrics = train_experiment(_config(*recipe), tmp_path, progress=False)
    assert metrics["train_loss"].notna().all() and metrics["lr"].iloc[-1] == pytest.approx(0.1 * 0.05)
    assert metrics["val_top1_max"].iloc[-1] > 20  # better than chance (10%) after two short epochs
