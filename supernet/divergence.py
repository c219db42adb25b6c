"""A run whose loss stopped being finite: what is recorded, and which settings may fix it on resume.

A diverged run keeps its last good checkpoint. ``divergences.json`` in the run folder lists
every divergence (epoch, step, loss and the settings changed to get past it); the last one
without ``fixed_with`` is pending, and only then may ``--resume`` change the config, and only
in :data:`FIXES`: the settings that tame a diverging optimisation without changing what the
checkpoint holds (the parameters, the optimiser's state and the sampler's draws stay valid).
"""

from __future__ import annotations

from pathlib import Path

from elasticnas.core.atomic import atomic_write_json
from elasticnas.core.errors import ConfigError
from elasticnas.core.files import read_json
from elasticnas.core.run_layout import CONFIG, DIVERGENCES

FIXES = ("optim.lr", "optim.grad_clip", "optim.warmup_epochs")


def read_divergences(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / DIVERGENCES
    if not path.exists():
        return []
    entries = read_json(path, "divergence record")
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "epoch" in e for e in entries):
        raise ConfigError(f"{path} is not a divergence record (a list of objects with an epoch); remove it")
    return entries


def record_divergence(run_dir: Path, *, epoch: int, step: int, loss: float, checkpoint_epoch: int | None) -> None:
    """Append a pending divergence (the loss as text: JSON has no NaN)."""
    entry = {"epoch": epoch, "step": step, "loss": str(loss), "checkpoint_epoch": checkpoint_epoch,
             "fixed_with": None}
    atomic_write_json(Path(run_dir) / DIVERGENCES, [*read_divergences(run_dir), entry])


def pending_divergence(run_dir: Path) -> dict | None:
    entries = read_divergences(run_dir)
    return entries[-1] if entries and entries[-1].get("fixed_with") is None else None


def check_fix(run_dir: Path, changed: dict[str, tuple]) -> None:
    """Refuse a resume whose config differs from the run's, unless it fixes a pending divergence
    with :data:`FIXES` alone."""
    if not changed:
        return
    saved = Path(run_dir) / CONFIG
    if pending_divergence(run_dir) is None:
        raise ConfigError(f"--resume needs the run's own config; these keys differ from {saved}: "
                          f"{', '.join(changed)}")
    others = [key for key in changed if key not in FIXES]
    if others:
        raise ConfigError(f"resuming a diverged run may change only {', '.join(FIXES)}; these keys differ from "
                          f"{saved} too: {', '.join(others)}")


def mark_fixed(run_dir: Path, changed: dict[str, tuple]) -> None:
    """Record on the pending divergence the settings that were changed to resume past it."""
    entries = read_divergences(run_dir)
    entries[-1]["fixed_with"] = {key: {"was": old, "now": new} for key, (old, new) in changed.items()}
    atomic_write_json(Path(run_dir) / DIVERGENCES, entries)
