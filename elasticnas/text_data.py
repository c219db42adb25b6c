"""Text corpora as bytes, with fixed splits, and the language-model metric: bits per byte.

Nothing downloads. ``pydoc_topics`` is the help text every Python ships (``pydoc_data.topics``:
the language reference's topics, about 460 KB), joined in sorted topic order; ``stdlib_sources``
is the standard library's own ``.py`` files of a fixed list of modules; ``text_folder`` reads a
user's ``.txt`` files (sorted by path). Tokens are bytes (a vocabulary of 256), so a model's
cross-entropy in bits per token *is* its bits per byte, comparable across tokenisers.

The split is fixed by position, not by a seed: the corpus is cut into 4 KiB chunks and, of
every 20, the 19th goes to validation and the 20th to test, so all three see every part of the
corpus. Python versions ship slightly different topics, so every corpus carries its SHA-256,
which a run records and checks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from elasticnas.core.errors import ConfigError

VOCABULARY = 256  # byte-level tokens
CHUNK = 4096  # bytes per split unit
STDLIB_MODULES = ("argparse", "collections/__init__", "dataclasses", "functools", "inspect", "pathlib",
                  "subprocess", "textwrap", "typing", "unittest/case")


@dataclass(frozen=True)
class TextCorpus:
    name: str
    train: np.ndarray  # uint8 bytes
    validation: np.ndarray
    test: np.ndarray
    sha256: str  # of the whole corpus before the split

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def split_bytes(name: str, data: bytes) -> TextCorpus:
    """The fixed split of ``data`` (see the module docstring)."""
    if len(data) < 20 * CHUNK:
        raise ConfigError(f"corpus {name!r} holds {len(data):,} bytes; at least {20 * CHUNK:,} are needed "
                          f"for a validation and a test chunk of {CHUNK:,} bytes each")
    array = np.frombuffer(data, dtype=np.uint8)
    position = (np.arange(len(array)) // CHUNK) % 20
    return TextCorpus(name, array[position < 18].copy(), array[position == 18].copy(), array[position == 19].copy(),
                      hashlib.sha256(data).hexdigest())


def pydoc_topics() -> TextCorpus:
    """The help topics of the running Python, in sorted topic order."""
    from pydoc_data.topics import topics

    return split_bytes("pydoc_topics", "\n\n".join(topics[key] for key in sorted(topics)).encode("utf-8"))


def stdlib_sources(modules: tuple[str, ...] = STDLIB_MODULES) -> TextCorpus:
    """The sources of ``modules`` of the running Python's standard library, in the given order."""
    root = Path(importlib.util.find_spec("argparse").origin).parent
    paths = [root / f"{module}.py" for module in modules]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"standard library sources {missing} are not there (a Python without its .py files?)")
    return split_bytes("stdlib_sources", b"\n\n".join(p.read_bytes() for p in paths))


def text_folder(root: str | Path) -> TextCorpus:
    """Every ``.txt`` file under ``root``, in sorted path order."""
    root = Path(root)
    paths = sorted(root.rglob("*.txt")) if root.is_dir() else []
    if not paths:
        raise ConfigError(f"text folder {str(root)!r} holds no .txt files; give a folder of UTF-8 text files")
    return split_bytes(f"text_folder:{root.name}", b"\n\n".join(p.read_bytes() for p in paths))


CORPORA = {"pydoc_topics": pydoc_topics, "stdlib_sources": stdlib_sources}


def load_corpus(name: str = "pydoc_topics", root: str | Path | None = None) -> TextCorpus:
    """A bundled corpus by name, or ``text_folder`` with ``root``."""
    if name == "text_folder":
        if root is None:
            raise ConfigError("the text_folder corpus needs a root folder")
        return text_folder(root)
    if name not in CORPORA:
        raise ConfigError(f"corpus {name!r} is not known; choose one of {[*CORPORA, 'text_folder']}")
    return CORPORA[name]()


def random_windows(data: np.ndarray, context: int, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``batch`` windows of ``context`` bytes at random offsets, and the same windows shifted by one (targets)."""
    if len(data) <= context:
        raise ConfigError(f"{len(data):,} bytes cannot fill a window of {context} tokens plus its target")
    starts = torch.randint(0, len(data) - context, (batch,), generator=generator)
    rows = torch.from_numpy(np.stack([data[s: s + context + 1] for s in starts.tolist()]).astype(np.int64))
    return rows[:, :-1], rows[:, 1:]


def blocks(data: np.ndarray, context: int) -> tuple[Tensor, Tensor]:
    """Consecutive non-overlapping windows of ``context`` bytes covering ``data`` (the tail that does not
    fill a window left out), and their targets: the evaluation order, the same every time."""
    count = (len(data) - 1) // context
    if count < 1:
        raise ConfigError(f"{len(data):,} bytes cannot fill one evaluation window of {context} tokens")
    rows = torch.from_numpy(data[: count * context + 1].astype(np.int64))
    return rows[:-1].view(count, context), rows[1:].view(count, context)


@torch.no_grad()
def bits_per_byte(model, data: np.ndarray, context: int, batch_size: int = 16) -> tuple[float, float]:
    """``(mean, standard error)`` of the cross-entropy in bits per byte of ``model`` (token ids -> logits)
    over the consecutive windows of ``data``; the standard error is over windows (each one's mean)."""
    inputs, targets = blocks(data, context)
    device = next(model.parameters()).device if isinstance(model, torch.nn.Module) else torch.device("cpu")
    per_window = []
    for x, y in zip(inputs.split(batch_size), targets.split(batch_size), strict=True):
        logits = model(x.to(device)).float()
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.to(device).flatten(), reduction="none")
        per_window.append(loss.view(len(x), -1).mean(dim=1).cpu())
    losses = torch.cat(per_window) / math.log(2)
    spread = losses.std().item() / math.sqrt(len(losses)) if len(losses) > 1 else float("nan")
    return losses.mean().item(), spread
