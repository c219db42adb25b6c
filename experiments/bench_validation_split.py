"""How many validation images make a subnet's measured top-1 more signal than noise? (mnist5k)

A supernet trained with the default recipe (``--run``; trained first when missing) scores
``--subnets`` subnets spread over the MACs range on every held-out image of mnist5k (its
validation and test splits together), one right/wrong per image and subnet, after the same
exact BN recalibration as ``elasticnas measure``. From that matrix, for validation sizes V:

- noise share, binomial: the mean squared standard error of top-1 at V images over the
  variance of the measured top-1 across subnets (the variance of the true top-1 is estimated
  from all held-out images, the noise scales as 1/V). This is what ``elasticnas fit`` reports.
- noise share, paired: the same after removing from each image the share of subnets that get
  it right. Subnets are scored on the same images, so an image every subnet misses lowers all
  of them alike and changes no ranking: the ranking noise is this smaller share.
- test-retest tau: Kendall tau between the top-1 on two disjoint random sets of V images
  each, mean over ``--draws`` draws (V up to half the held-out images); beside it, the same
  tau predicted from two sets of V/2 images each, as ``elasticnas fit`` predicts its ceiling
  from the two halves of the validation split (``doubled_length_tau``).

    python experiments/bench_validation_split.py [--run runs/split_study] [--subnets 60]
    python experiments/bench_validation_split.py --quick   # one epoch on the 8x8 digits, 4 subnets

Writes results/validation_split.csv and results/validation_split.png.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from bench_common import QUICK_TRAINING, add_common_arguments, results_folder, write_results
from torch.utils.data import ConcatDataset
from tqdm.auto import tqdm

from elasticnas.core.atomic import atomic_save_figure, pyplot
from elasticnas.experiment import load_experiment, train_experiment
from elasticnas.predictors import doubled_length_tau, kendall_tau
from elasticnas.runs import load_trained, spread_by_macs
from elasticnas.supernet.evaluation import EvalData, calibrated_subnet

SIZES = (250, 375, 500, 750, 1000, 1250, 1500, 2000)


@torch.no_grad()
def right_or_wrong(run, archs) -> np.ndarray:
    """``(subnets, images)`` booleans: subnet s classifies held-out image i correctly."""
    train = run.config.train
    held_out = ConcatDataset([run.splits.val, run.splits.test])
    data = EvalData.from_datasets(run.splits.train, held_out, calibration_images=train.bn_calibration_images,
                                  seed=train.seed, calibration_batch_size=train.bn_calibration_batch_size)
    rows = []
    for arch in tqdm(archs, desc="scoring subnets on every held-out image", unit="subnet"):
        model = calibrated_subnet(run.supernet, arch, data)
        _, images = data.at(arch.resolution, torch.device("cpu"))
        predicted = torch.cat([model(batch).argmax(1) for batch in images.split(500)])
        rows.append((predicted == data.labels).numpy())
    return np.stack(rows)


def noise_shares(right: np.ndarray, sizes) -> pd.DataFrame:
    """Binomial and paired noise shares of top-1 across subnets at each validation size."""
    n_images = right.shape[1]
    top1 = right.mean(axis=1)
    binomial_var = np.mean(top1 * (1 - top1))  # per image; over V images: / V
    paired_var = np.mean((right - right.mean(axis=0, keepdims=True)).var(axis=1, ddof=1))
    true_var = max(np.var(top1, ddof=1) - paired_var / n_images, 0.0)
    rows = []
    for size in sizes:
        binomial, paired = binomial_var / size, paired_var / size
        rows.append({"val_images": size, "mean_se_points": 100 * np.sqrt(binomial),
                     "noise_share_binomial": binomial / (true_var + binomial),
                     "noise_share_paired": paired / (true_var + paired),
                     "true_top1_sd_points": 100 * np.sqrt(true_var)})
    return pd.DataFrame(rows)


def retest_tau(right: np.ndarray, size: int, draws: int, seed: int) -> tuple[float, float]:
    """Mean and standard deviation over draws of tau between two disjoint sets of ``size`` images."""
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(draws):
        order = rng.permutation(right.shape[1])
        first, second = right[:, order[:size]].mean(axis=1), right[:, order[size : 2 * size]].mean(axis=1)
        taus.append(kendall_tau(first, second))
    return float(np.mean(taus)), float(np.std(taus))


def plot(table: pd.DataFrame, path: Path) -> Path:
    fig, (left, right) = pyplot().subplots(1, 2, figsize=(10, 4))
    left.plot(table["val_images"], table["noise_share_binomial"], "o-", label="binomial (what fit reports)")
    left.plot(table["val_images"], table["noise_share_paired"], "s-", label="paired (ranking noise)")
    left.axhline(0.5, color="grey", lw=0.8, ls="--")
    left.set(xlabel="validation images", ylabel="share of top-1 variance that is noise", ylim=(0, 1))
    left.legend()
    measured = table.dropna(subset=["retest_tau"])
    right.errorbar(measured["val_images"], measured["retest_tau"], yerr=measured["retest_tau_sd"], fmt="o-",
                   label="measured: two disjoint sets")
    right.plot(table["val_images"], table["retest_tau_from_halves"], "s--", label="predicted from halves")
    right.legend()
    right.set(xlabel="validation images (each of two disjoint sets)", ylabel="Kendall tau, set vs set",
              ylim=(0, 1))
    fig.suptitle("mnist5k, tiny_mbv3 sandwich supernet: measurement noise of subnet top-1")
    fig.tight_layout()
    return atomic_save_figure(fig, path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=None, help="the trained run (default: runs/split_study)")
    parser.add_argument("--config", default="mnist_sandwich")
    parser.add_argument("--subnets", type=int, default=60)
    parser.add_argument("--draws", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    overrides = list(QUICK_TRAINING) if args.quick else []
    if args.quick:
        args.subnets, args.draws = 4, 3
    folder = results_folder(args)
    args.run = args.run or (folder / "split_study" if args.quick else Path("runs/split_study"))
    if not (args.run / "checkpoint.pt").exists():
        train_experiment(load_experiment(args.config, overrides), args.run)
    run = load_trained(args.run)
    right = right_or_wrong(run, spread_by_macs(run.space, args.subnets, seed=args.seed))
    table = noise_shares(right, [s for s in SIZES if s <= right.shape[1]])
    taus = [retest_tau(right, s, args.draws, args.seed) if 2 * s <= right.shape[1] else (np.nan, np.nan)
            for s in table["val_images"]]
    table["retest_tau"], table["retest_tau_sd"] = zip(*taus, strict=True)
    table["retest_tau_from_halves"] = [doubled_length_tau(retest_tau(right, s // 2, args.draws, args.seed)[0])
                                       for s in table["val_images"]]
    table["held_out_images"], table["subnets"] = right.shape[1], right.shape[0]
    table["top1_range_points"] = 100 * np.ptp(right.mean(axis=1))
    write_results(table, folder / "validation_split.csv", quick=args.quick)
    plot(table, folder / "validation_split.png")
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
