"""Seed noise of the sampling-strategy benchmark, and its figures read against it.

How far two scratch trainings of one subnet agree, the Kendall tau a perfect ranking could
reach against such noisy references, and each config's inherited subnets against the mean of
several scratch trainings (and over several supernet seeds). Used by
``bench_sampling_strategies.py``; plain pandas on its result tables, no training here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from elasticnas.core.atomic import atomic_save_figure, pyplot

SEED_MARK = "#seed"  # config labels of supernets trained with another seed: "config#seedN"


def _with_seed_labels(detail: pd.DataFrame) -> pd.DataFrame:
    """``detail`` with a ``label`` column: the config without its seed mark, shared by its seeds."""
    return detail.assign(label=detail["config"].str.split(SEED_MARK).str[0])


def _against(values, reference, prefix: str = "") -> dict:
    """Mean gap, worst gap and Kendall tau of ``values`` against ``reference``, per subnet."""
    gaps = np.asarray(values) - np.asarray(reference)
    return {f"{prefix}mean_gap": gaps.mean(), f"{prefix}worst_gap": gaps.min(),
            f"{prefix}kendall_tau": kendalltau(values, reference)[0]}


def retest_agreement(rows: pd.DataFrame) -> pd.DataFrame:
    """Per pair of scratch trainings: Kendall tau, mean and worst difference (later - earlier)."""
    out = []
    for config, group in rows.groupby("config", sort=False):
        table = group.pivot(index="arch", columns="retest", values="scratch_top1")  # one row per subnet
        for a in table.columns:
            for b in table.columns[table.columns > a]:
                diff = table[b] - table[a]
                out.append({"config": config, "first": a, "second": b, "kendall_tau": kendalltau(table[a], table[b])[0],
                            "mean_difference": diff.mean(), "worst_difference": diff.min(),
                            "largest_disagreement": diff.abs().max()})
    return pd.DataFrame(out).round(3)


def pooled_sd(table: pd.DataFrame) -> float:
    """Seed-to-seed standard deviation pooled over subnets (rows: subnets, columns: trainings)."""
    return float(np.sqrt(table.var(axis=1, ddof=1).mean()))


def tau_ceiling(rows: pd.DataFrame, goal: float = 0.6, draws: int = 4000, seed: int = 0) -> pd.DataFrame:
    """The Kendall tau a perfect ranking would reach against noisy scratch references.

    Takes the mean of a config's scratch trainings per subnet as the truth and the pooled
    seed-to-seed SD as one training's noise, and draws references of one training and of the
    mean of all of them: the mean tau and how often it reaches ``goal``. Optimistic (the
    observed means are spread wider than the truth by their own noise), so an upper bound on
    what any supernet can show on these subnets.
    """
    rng, out = np.random.default_rng(seed), []
    for config, group in rows.groupby("config", sort=False):
        table = group.pivot(index="arch", columns="retest", values="scratch_top1")
        truth, count = table.mean(axis=1).to_numpy(), table.shape[1]
        sd = pooled_sd(table)
        row = {"config": config, "subnets": len(truth), "scratch_trainings": count, "seed_sd_pooled": sd}
        for label, k in (("one_training", 1), (f"mean_of_{count}", count)):
            taus = np.array([kendalltau(truth, truth + rng.normal(0, sd / np.sqrt(k), len(truth)))[0]
                             for _ in range(draws)])
            row |= {f"perfect_tau_vs_{label}": taus.mean(), f"share_reaching_{goal}_vs_{label}": (taus >= goal).mean()}
        out.append(row)
    return pd.DataFrame(out).round(3)


def against_scratch_mean(detail: pd.DataFrame, retests: pd.DataFrame) -> pd.DataFrame:
    """Each benchmarked config's inherited (and fine-tuned) subnets against the mean of all scratch
    trainings of the same subnets: a reference with less seed noise than one training."""
    if "arch" not in detail:  # no config benchmarked yet on this panel
        return pd.DataFrame(columns=["config", "scratch_trainings"])
    mean = retests.groupby("arch")["scratch_top1"].agg(["mean", "count"])
    out = []
    for config, group in detail[detail["arch"].isin(mean.index)].groupby("config", sort=False):
        reference = mean.loc[group["arch"], "mean"].to_numpy()
        row = {"config": config, "scratch_trainings": int(mean.loc[group["arch"], "count"].min())}
        for column in ("inherited_top1", "finetuned_top1"):
            values = group[column].to_numpy(dtype=float)
            if np.isnan(values).all():
                continue
            row |= _against(values, reference, column.removesuffix("top1"))
        out.append(row)
    return pd.DataFrame(out).round(3)


def across_seeds(detail: pd.DataFrame, retests: pd.DataFrame) -> pd.DataFrame:
    """Configs trained with several seeds: the mean inherited top-1 over seeds against the mean of
    the scratch trainings, and how far two supernet seeds agree on the ranking of the same subnets;
    where every seed's subnets were also fine-tuned, the mean fine-tuned top-1 over seeds likewise."""
    if "arch" not in detail:  # no config benchmarked yet on this panel
        return pd.DataFrame(columns=["config", "supernet_seeds"])
    detail = _with_seed_labels(detail)
    reference = retests.groupby("arch")["scratch_top1"].agg(["mean", "count"])
    out = []
    for label, group in detail[detail["arch"].isin(reference.index)].groupby("label", sort=False):
        table = group.pivot(index="arch", columns="config", values="inherited_top1")
        if table.shape[1] < 2:
            continue
        scratch = reference.loc[table.index, "mean"].to_numpy()
        inherited = table.mean(axis=1).to_numpy()
        pairs = [kendalltau(table[a], table[b])[0] for i, a in enumerate(table) for b in table.columns[i + 1:]]
        per_seed = table.sub(scratch, axis=0)
        out.append({"config": label, "supernet_seeds": table.shape[1],
                    "scratch_trainings": int(reference.loc[table.index, "count"].min()),
                    **_against(inherited, scratch),
                    "worst_gap_per_seed_min": per_seed.min().min(), "worst_gap_per_seed_max": per_seed.min().max(),
                    "seed_to_seed_tau_mean": float(np.mean(pairs)),
                    "seed_sd_pooled": pooled_sd(table)})
        finetuned = group.pivot(index="arch", columns="config", values="finetuned_top1") \
            if "finetuned_top1" in group else pd.DataFrame()
        if not finetuned.empty and finetuned.notna().all().all():
            tuned = finetuned.loc[table.index].mean(axis=1).to_numpy()
            out[-1] |= _against(tuned, scratch, "finetuned_")
    return pd.DataFrame(out).round(3)


def plot_against_scratch(detail: pd.DataFrame, retests: pd.DataFrame, path: Path) -> bool:
    """Configs trained with several supernet seeds: mean inherited top-1 per subnet (bars: the
    seeds' range) beside the scratch trainings' mean (band: +-1 SD), along MACs. False, and
    nothing written, where no config of this panel has several seeds."""
    if "arch" not in detail:
        return False
    detail = _with_seed_labels(detail)
    seeded = [label for label, group in detail.groupby("label", sort=False) if group["config"].nunique() > 1]
    if not seeded:
        return False
    scratch = retests.groupby("macs")["scratch_top1"].agg(["mean", "std", "count"])
    supernets = ", ".join(sorted(set(detail.loc[detail["label"].isin(seeded), "supernet"].dropna()))) or "the supernet"
    fig, ax = pyplot().subplots(figsize=(7.5, 4.5))
    ax.fill_between(scratch.index / 1e6, scratch["mean"] - scratch["std"], scratch["mean"] + scratch["std"],
                    color="grey", alpha=0.25, label=f"scratch, +-1 SD of {int(scratch['count'].min())} trainings")
    ax.plot(scratch.index / 1e6, scratch["mean"], "k-", lw=1.5, label="scratch, mean")
    for label in seeded:
        table = detail[detail["label"] == label].groupby("macs")["inherited_top1"].agg(["mean", "min", "max", "count"])
        ax.errorbar(table.index / 1e6, table["mean"], yerr=[table["mean"] - table["min"], table["max"] - table["mean"]],
                    marker="o", capsize=3, lw=1,
                    label=f"{label}, inherited (mean, range of {table['count'].min()} seeds)")
    ax.set(xscale="log", xlabel="MACs (millions)", ylabel="test top-1 (%)",
           title=f"Inherited against scratch: {len(scratch)} subnets of {supernets} on mnist5k")
    low, high = scratch.index.min() / 1.2e6, scratch.index.max() * 1.2e-6
    ticks = [t for t in (0.25, 0.5, 1, 2, 3, 4, 6, 8, 12, 16) if low <= t <= high]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks], minor=False)
    ax.minorticks_off()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path)
    return True
