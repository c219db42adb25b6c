from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from elasticnas.supernet import ConfigError
from elasticnas.supernet import finetuning as finetuning_module
from elasticnas.supernet.finetuning import FinetuneConfig, finetune

CONFIG = FinetuneConfig(epochs=2, lr=0.05, batch_size=16)


def _student() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3))


def _setup():
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(64, 1, 8, 8, generator=generator), torch.randint(0, 3, (64,), generator=generator))
    torch.manual_seed(2)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(100, 3))  # sees the images at 10 x 10
    return data, teacher


def _train(tmp_path, **kwargs):
    data, teacher = _setup()
    student = _student()
    history = finetune(student, teacher, data, resolution=8, teacher_resolution=10, config=CONFIG,
                       checkpoint=tmp_path / "checkpoint.pt", identity={"arch": "a"}, progress=False, **kwargs)
    return student, history


def test_an_interrupted_finetuning_resumes_to_the_same_weights(tmp_path, monkeypatch):
    whole, history = _train(tmp_path / "whole")
    assert [h["epoch"] for h in history] == [1, 2] and history[-1]["lr_end"] == pytest.approx(0.0, abs=1e-12)
    steps, real_step = [], finetuning_module._step

    def step_then_die(*args):
        if len(steps) == 4:  # the first step of epoch 2 (64 images / 16 per batch)
            raise KeyboardInterrupt
        steps.append(1)
        return real_step(*args)

    monkeypatch.setattr(finetuning_module, "_step", step_then_die)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "resumed")
    monkeypatch.setattr(finetuning_module, "_step", real_step)
    resumed, resumed_history = _train(tmp_path / "resumed")
    assert {**resumed_history[0], "seconds": 0} == {**history[0], "seconds": 0}
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_a_checkpoint_of_other_settings_is_refused(tmp_path):
    _train(tmp_path)
    data, teacher = _setup()
    with pytest.raises(ConfigError, match="other settings"):
        finetune(_student(), teacher, data, resolution=8, teacher_resolution=10, config=CONFIG,
                 checkpoint=tmp_path / "checkpoint.pt", identity={"arch": "b"}, progress=False)


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"lr": 0.0}, {"distill_weight": 1.5}, {"batch_size": 0}])
def test_bad_settings_are_refused_by_name(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        FinetuneConfig(**bad)
