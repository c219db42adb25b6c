"""The reference trace of real Once-for-All subnets (``../shared/refdata``), when it is present.

Each row of DyNAS-T's published trace is a subnet of ``ofa_mbv3_w10`` with its real
ImageNet top-1 (weights inherited, BN recalibrated). It is used to develop and test
predictors on real accuracies; the project works without it.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pandas as pd

from elasticnas.supernet.catalogue import create_space

TRACE_NAME = "ofa_mbv3_w10_imagenet_trace.csv"
DEFAULT_TRACE = Path(__file__).resolve().parents[2] / "shared" / "refdata" / TRACE_NAME


def reference_trace_path() -> Path | None:
    """``$ELASTICNAS_REFDATA/<trace>`` or ``../shared/refdata/<trace>``, whichever exists first."""
    folder = os.environ.get("ELASTICNAS_REFDATA")
    for path in ([Path(folder) / TRACE_NAME] if folder else []) + [DEFAULT_TRACE]:
        if path.is_file():
            return path
    return None


def load_reference_trace(path: str | os.PathLike | None = None, *, num_classes: int = 1000,
                         deduplicate: bool = True) -> pd.DataFrame:
    """Rows with ``arch`` (canonical JSON in ``ofa_mbv3_w10``), ``top1``, ``params``, ``macs_torchprofile``.

    ``deduplicate`` keeps one row per canonical subnet, averaging the top-1 of repeats.
    """
    path = Path(path) if path is not None else reference_trace_path()
    if path is None or not path.is_file():
        raise FileNotFoundError(f"reference trace not found (looked for {path or DEFAULT_TRACE}); "
                                f"set ELASTICNAS_REFDATA to the folder holding {TRACE_NAME}")
    raw = pd.read_csv(path)
    space = create_space("ofa_mbv3_w10", num_classes=num_classes)
    archs = [space.from_dict(ast.literal_eval(text)) for text in raw["Sub-network"]]
    frame = pd.DataFrame({
        "arch": [a.to_json() for a in archs],
        "top1": raw["Top-1 Acc (%)"].astype(float),
        "params": raw["Model Parameters"].astype(int),
        "macs_torchprofile": raw["MACs"].astype(int),
    })
    if deduplicate:
        frame = frame.groupby("arch", sort=False, as_index=False).agg(
            top1=("top1", "mean"), params=("params", "first"), macs_torchprofile=("macs_torchprofile", "first"))
    return frame
