"""Import another project's trained supernet as a run folder (``elasticnas import-ofa``).

The run folder holds ``config.yaml`` (the preset, its class and channel counts, the source file
and its sha256) and ``supernet.safetensors``; ``measure``, ``fit``, ``search``, ``export`` and
``train --init`` read it as they read a trained run. The folder appears whole or not at all: it
is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import yaml
from safetensors.torch import save_file

from elasticnas.core.config import apply_overrides, parse_config
from elasticnas.core.errors import ConfigError
from elasticnas.core.run_layout import CONFIG, IMPORTED_WEIGHTS
from elasticnas.experiment import ExperimentConfig, InitConfig
from elasticnas.parents import file_sha256
from elasticnas.supernet import create_supernet
from elasticnas.supernet.foreign import convert_foreign_state, read_tensor_file


def import_checkpoint(checkpoint: str | os.PathLike, *, supernet: str, out: str | os.PathLike, format: str = "ofa",
                      num_classes: int = 1000, in_channels: int = 3, overrides: list[str] = ()) -> Path:
    """Read ``checkpoint`` (a ``format`` file, e.g. OFA's) into preset ``supernet`` and write run folder ``out``.

    ``overrides`` are ``key=value`` settings of the run's config, e.g. ``data.root=/data/imagenet/val``
    (the data ``measure`` and ``export`` evaluate on; an ImageFolder by default).
    """
    checkpoint, out = Path(checkpoint).expanduser(), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists and is not an empty folder; choose a new --out")
    data = apply_overrides({"data": {"name": "imagefolder"}}, list(overrides))
    data["supernet"] = {**(data.get("supernet") or {}), "name": supernet, "num_classes": num_classes,
                        "in_channels": in_channels}
    config = parse_config(ExperimentConfig, data)
    # Overrides such as a shorter resolution list give another space over the same tensors.
    net = create_supernet(supernet, num_classes=num_classes, in_channels=in_channels, **config.supernet.overrides)
    net.load_state_dict(convert_foreign_state(format, read_tensor_file(checkpoint), net))
    sha256 = file_sha256(checkpoint)
    config = replace(config, init=InitConfig(source=str(checkpoint.resolve()), sha256=sha256, format=format))
    write_run_whole(out, config, {k: v.contiguous() for k, v in net.state_dict().items()},
                    {"space_fingerprint": net.space.fingerprint, "source_sha256": sha256, "format": format})
    return out


def _permissions_as_umask_allows(folder: Path) -> None:
    # mkdtemp and safetensors create owner-only entries; a run folder is shared like any other.
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def write_run_whole(out: Path, config: ExperimentConfig, tensors: dict, metadata: dict[str, str],
                    texts: dict[str, str] | None = None) -> None:
    """A run folder of a supernet made elsewhere (config.yaml, supernet.safetensors and ``texts`` by file
    name), written under a temporary name and renamed into ``out`` (absent or empty) when whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.importing-", dir=out.parent))
    try:
        (staging / CONFIG).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        save_file(tensors, str(staging / IMPORTED_WEIGHTS), metadata=metadata)
        for name, text in (texts or {}).items():
            (staging / name).write_text(text)
        _permissions_as_umask_allows(staging)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
