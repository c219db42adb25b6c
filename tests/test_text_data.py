"""The bundled text corpora, their fixed split, and bits per byte."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from elasticnas.core.errors import ConfigError
from elasticnas.text_data import (
    CHUNK,
    bits_per_byte,
    blocks,
    load_corpus,
    random_windows,
    split_bytes,
    stdlib_sources,
    text_folder,
)


def test_the_split_is_fixed_by_position_and_covers_every_byte_once():
    data = bytes(range(256)) * (41 * CHUNK // 256) + b"tail"
    corpus = split_bytes("demo", data)
    assert sum(corpus.sizes.values()) == len(data)
    assert corpus.sha256 == hashlib.sha256(data).hexdigest()
    # 41 whole chunks and a 4-byte tail: chunks 18 and 38 validate, 19 and 39 test; chunk 40 and the tail train
    assert corpus.sizes == {"train": 37 * CHUNK + 4, "validation": 2 * CHUNK, "test": 2 * CHUNK}
    source = np.frombuffer(data, dtype=np.uint8)
    assert np.array_equal(corpus.validation[:CHUNK], source[18 * CHUNK: 19 * CHUNK])
    assert np.array_equal(corpus.test[CHUNK:], source[39 * CHUNK: 40 * CHUNK])


def test_bundled_corpora_load_the_same_every_time():
    first, again = load_corpus("pydoc_topics"), load_corpus("pydoc_topics")
    assert first.sha256 == again.sha256 and np.array_equal(first.test, again.test)
    assert len(first.train) > 300_000 and 0.04 < len(first.validation) / len(first.train) < 0.07
    assert len(stdlib_sources().train) > 100_000


def test_unknown_and_unusable_corpora_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="choose one of"):
        load_corpus("wikipedia")
    with pytest.raises(ConfigError, match="no .txt files"):
        text_folder(tmp_path)
    (tmp_path / "a.txt").write_text("too short")
    with pytest.raises(ConfigError, match="at least"):
        text_folder(tmp_path)
    (tmp_path / "b.txt").write_text("x" * 100_000)
    assert sum(text_folder(tmp_path).sizes.values()) == len("too short") + 2 + 100_000


def test_windows_and_their_targets_are_shifted_by_one():
    data = np.arange(11, dtype=np.uint8)
    inputs, targets = blocks(data, 3)
    assert inputs.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert targets.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    x, y = random_windows(np.arange(200, dtype=np.uint8), 16, 4, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 16) and torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(y - x, torch.ones_like(x))


def test_a_uniform_model_scores_eight_bits_per_byte_and_training_scores_fewer():
    corpus = load_corpus("pydoc_topics")
    uniform = lambda tokens: torch.zeros(*tokens.shape, 256)  # noqa: E731
    mean, error = bits_per_byte(uniform, corpus.validation[:4096], 64)
    assert mean == pytest.approx(8.0, abs=1e-5) and error == pytest.approx(0.0, abs=1e-5)

    from elasticnas.supernet import create_supernet

    torch.manual_seed(0)
    net = create_supernet("tiny_gpt", num_classes=256)
    arch, generator = net.space.min(), torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    before, _ = bits_per_byte(lambda t: net(t, arch), corpus.validation[:8192], 64)
    for _ in range(40):
        x, y = random_windows(corpus.train, 64, 16, generator)
        loss = torch.nn.functional.cross_entropy(net(x, arch).flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after, error = bits_per_byte(lambda t: net.eval()(t, arch), corpus.validation[:8192], 64)
    assert before == pytest.approx(8.0, abs=0.2)  # random initial weights: close to uniform
    assert after < before - 1.0 and 0 < error < 1  # 40 steps learn which bytes are frequent
    assert math.isfinite(after)
