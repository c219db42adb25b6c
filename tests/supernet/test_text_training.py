"""A language model trains once through the same trainer as the image families: every sampling
strategy, next-token losses and distillation at every position, bits per byte, bit-identical resume."""

from __future__ import annotations

import os
import signal

import numpy as np
import pandas as pd
import pytest
import torch

from elasticnas.core.checkpoint import load_checkpoint
from elasticnas.experiment import load_experiment, train_experiment
from elasticnas.supernet.samplers import list_strategies
from elasticnas.supernet.training import TrainingInterrupted
from elasticnas.text_data import load_corpus


@pytest.fixture(scope="module")
def text_root(tmp_path_factory):
    """The first 96 KB of Python's help text as a user's text folder: 18 training steps per epoch below."""
    root = tmp_path_factory.mktemp("text")
    corpus = load_corpus("pydoc_topics")
    (root / "topics.txt").write_bytes(corpus.train[:96_000].tobytes())
    return root


def _config(root, *extra):
    return load_experiment("text_tiny_gpt", [
        "data.name=textfolder", f"data.root={root}", "data.context=32", "data.batch_size=128",
        "supernet.overrides.resolutions=[16,32]", "train.epochs=1", "optim.warmup_epochs=0.5", *extra])


def test_a_language_model_trains_once_and_reports_bits_per_byte(text_root, tmp_path):
    trainer, metrics = train_experiment(_config(text_root, "train.epochs=2"), tmp_path, progress=False)
    saved = pd.read_csv(tmp_path / "metrics.csv")
    for name in ("max", "middle", "min"):
        bits = saved[f"val_bits_per_byte_{name}"]
        assert np.allclose(bits, saved[f"val_loss_{name}"] / np.log(2))
        assert (bits < 7.0).all()  # below the 8 bits of a uniform guess: it learned which bytes come next
    assert saved["val_bits_per_byte_max"].iloc[1] < saved["val_bits_per_byte_max"].iloc[0]


@pytest.mark.slow
def test_a_language_model_resumes_bit_identically(text_root, tmp_path):
    config = _config(text_root, "train.epochs=2")
    reference, reference_metrics = train_experiment(config, tmp_path / "full", progress=False)

    def stop_mid_epoch(trainer, step):
        if step == trainer.steps_per_epoch + 3:  # the second epoch's third step
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted, match="--resume"):
        train_experiment(config, tmp_path / "cut", progress=False, on_step=stop_mid_epoch)
    state = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert (state["epoch"], state["step_in_epoch"]) == (1, 3)
    resumed, resumed_metrics = train_experiment(config, tmp_path / "cut", resume=True, progress=False)
    full, cut = reference.model.state_dict(), resumed.model.state_dict()
    assert full.keys() == cut.keys() and all(torch.equal(full[k], cut[k]) for k in full)
    columns = [c for c in reference_metrics if c != "seconds"]
    pd.testing.assert_frame_equal(reference_metrics[columns], resumed_metrics[columns])


@pytest.mark.slow
@pytest.mark.parametrize("strategy", list_strategies())
def test_every_strategy_trains_a_language_model(text_root, tmp_path, strategy):
    config = _config(text_root, f"sampler.name={strategy}", "sampler.options={}")
    trainer, metrics = train_experiment(config, tmp_path, progress=False)
    bits = metrics[[f"val_bits_per_byte_{name}" for name in ("max", "middle", "min")]]
    assert np.isfinite(metrics["train_loss"]).all() and np.isfinite(bits.to_numpy()).all()
    # the largest subnet learns from the labels under every strategy: below the 8 bits of a uniform
    # guess. Not the others: after 18 steps, a subnet taught only by a teacher as young is not bound
    # to beat a uniform guess yet (performance_aware's smallest subnet stood at 11.5 bits here)
    assert (bits["val_bits_per_byte_max"] < 8).all()


def test_a_run_records_its_corpus_and_refuses_to_resume_on_another(text_root, tmp_path):
    import hashlib
    import json

    from elasticnas.core.errors import ConfigError
    from elasticnas.core.run_layout import CORPUS

    config = _config(text_root, "data.batch_size=512")
    train_experiment(config, tmp_path, progress=False)
    record = json.loads((tmp_path / CORPUS).read_text())
    assert record == {"dataset": "textfolder", "sha256": hashlib.sha256((text_root / "topics.txt").read_bytes())
                      .hexdigest()}
    (tmp_path / CORPUS).write_text(json.dumps({**record, "sha256": "0" * 64}))
    with pytest.raises(ConfigError, match="not the text this run began with"):
        train_experiment(config, tmp_path, resume=True, progress=False)
