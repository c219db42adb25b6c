"""Bring your own model: one elasticized supernet against pruning the same network once per budget.

A user's network, an ordinary ``nn.Module`` (``own_models.py``: a small ResNet, or a ``transformers``
ViT at a small config), is trained on the bundled MNIST subset as its owner would. Then, from those
weights:

- **elastic**: ``elasticnas elasticize`` it, fine-tune the supernet once (the default strategy), measure,
  fit, search and export one subnet for each of the quickstart's three latency budgets;
- **pruned**: for each export, the original network with every channel group cut by L1 magnitude to the
  largest uniform width whose MACs do not exceed the export's, fine-tuned alone for ``--finetune-epochs``;
- **original**: the trained network itself.

The supernet's fine-tuning gets as many epochs as the three prunings together (``--supernet-epochs``,
default 3 x ``--finetune-epochs``): each route spends the same total training. Each row: test top-1 on
the held-out split, MACs, latency measured here (torch, batch 1, the same timer for every model) and the
training each route spent (seconds and epochs after the original's).

    python experiments/bench_own_model.py                  # the ResNet: about 25 minutes on 2 cores
    python experiments/bench_own_model.py --model vit      # the transformers ViT (pip install -e ".[models]")
    python experiments/bench_own_model.py --quick   # a 3-minute smoke run (files to a scratch folder)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from bench_common import add_common_arguments, results_folder, write_results
from own_models import user_resnet, user_vit
from safetensors.torch import save_file

from elasticnas.cli import main as cli
from elasticnas.data import DataConfig, load_data
from elasticnas.experiment import load_experiment, train_experiment
from elasticnas.export import load_subnet
from elasticnas.hardware import count_macs
from elasticnas.hardware.latency import measure_latency
from elasticnas.pipeline import quickstart
from elasticnas.supernet.batches import epoch_order, iterate, resize
from elasticnas.supernet.evaluation import score
from elasticnas.supernet.families.graph import elasticize
from elasticnas.supernet.training import warmup_cosine

RUNS = Path(__file__).resolve().parent.parent / "runs"  # the work folders: trained networks and the supernet run
# each network's owner: how it is built and trained (optimizer, peak rate), and the fine-tuning rate both
# routes use from the trained weights (cosine to zero)
MODELS = {"resnet": {"source": "own_models:user_resnet", "build": user_resnet, "optim": "sgd", "lr": 0.1,
                     "finetune_lr": 0.02, "epochs": 12},
          "vit": {"source": "own_models:user_vit", "build": user_vit, "optim": "adamw", "lr": 2e-3,
                  "finetune_lr": 5e-4, "epochs": 60}}
# how the supernet is fine-tuned: the default experiment's strategy (uniform + the smallest subnet), or the
# sandwich rule distilling every subnet from the trained network (a frozen teacher)
STRATEGIES = {"default": [], "frozen_teacher": ["sampler.name=sandwich",
                                                "sampler.options={teacher: frozen, num_random: 2}"]}


def train_plain(model, splits, epochs: int, lr: float, optim: str = "sgd", seed: int = 0) -> float:
    """SGD with Nesterov momentum (or AdamW) and a cosine rate, label smoothing 0.1; returns seconds spent."""
    torch.manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-5) \
        if optim == "sgd" else torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    batch, steps = 128, len(splits.train) // 128
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, steps * epochs, 0, 0.0))
    started = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        for images, labels in iterate(splits.train, epoch_order(len(splits.train), seed, epoch)[: steps * batch],
                                      batch):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), labels, label_smoothing=0.1).backward()
            optimizer.step()
            scheduler.step()
    return time.perf_counter() - started


def test_top1(model, splits, resolution: int = 28) -> float:
    """Top-1 on the test split, the images resized to the model's input resolution as in training."""
    images = torch.stack([splits.test[i][0] for i in range(len(splits.test))])
    labels = torch.tensor([int(splits.test[i][1]) for i in range(len(splits.test))])
    with torch.no_grad():
        return score(model.eval(), resize(images, resolution), labels).top1


def latency_ms(model, repeats: int, resolution: int = 28) -> float:
    return measure_latency(model.eval(), input_shape=(1, resolution, resolution), repeats=repeats,
                           warmup=5).median_ms


def pruned_to(original, macs: int):
    """The original network with each channel group cut, by L1 magnitude, to the largest uniform width
    whose MACs do not exceed ``macs`` (a 1/16 grid of widths; depth and kernels kept)."""
    grid = tuple(i / 16 for i in range(2, 17))
    net = elasticize(original, torch.zeros(2, 1, 28, 28), width=grid, depth=False, kernel=False, resolutions=(28,))
    best = None
    for fraction in grid:
        widths = tuple(min(gene.choices, key=lambda c, g=gene: abs(c - fraction * g.channels))
                       for gene in net.space.widths)
        arch = net.space.canonical({"resolution": 28, "widths": list(widths)})
        if count_macs(net.space, arch) <= macs:
            best = arch
    return net.extract(best or net.space.min()), count_macs(net.space, best or net.space.min())


def run(args) -> pd.DataFrame:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    splits = load_data(DataConfig(name="mnist5k"))
    owner = MODELS[args.model]
    torch.manual_seed(0)
    original = owner["build"]()
    seconds_original = train_plain(original, splits, args.epochs, lr=owner["lr"], optim=owner["optim"])
    weights = out / "original.safetensors"
    save_file({k: v.contiguous() for k, v in original.state_dict().items()}, str(weights))

    elastic = out / "elastic"
    if not (elastic / "config.yaml").exists():
        assert cli(["elasticize", owner["source"], "--weights", str(weights), "--input-shape", "1,28,28",
                    "--out", str(elastic), "--set", "data.name=mnist5k"]) == 0
    overrides = [f"train.epochs={args.supernet_epochs}", f"init.source={elastic}", f"optim.name={owner['optim']}",
                 f"optim.lr={owner['finetune_lr']}", "optim.warmup_epochs=0", *STRATEGIES[args.strategy]]
    supernet = out / f"supernet_{args.strategy}"
    if not (supernet / "metrics.csv").exists():
        train_experiment(load_experiment(str(elastic / "config.yaml"), overrides), supernet, progress=False)
    seconds_supernet = float(pd.read_csv(supernet / "metrics.csv")["seconds"].sum())  # also when resumed
    summary = quickstart(supernet, config=str(elastic / "config.yaml"), overrides=overrides, subnets=args.subnets,
                         trials=args.trials, predicted_evals=args.evals, progress=False, table_repeats=args.repeats,
                         table_rounds=1, report_folds=2 if args.quick else 5,
                         log=lambda line: print(line, flush=True))

    rows = [{"route": "original", "budget_ms": np.nan, "macs": count_macs(*_space_and_max(elastic)), "resolution": 28,
             "test_top1": test_top1(original, splits), "latency_ms": latency_ms(original, args.repeats),
             "train_s": seconds_original, "train_epochs": args.epochs}]
    for budget, folder in zip(summary["budget_ms"], summary["export"], strict=True):
        exported = load_subnet(folder)
        macs = json.loads((Path(folder) / "report.json").read_text())["macs"]
        resolution = json.loads((Path(folder) / "arch.json").read_text())["arch"]["resolution"]
        rows.append({"route": f"elastic, {args.strategy} (one fine-tuning)", "budget_ms": budget, "macs": macs,
                     "resolution": resolution, "test_top1": test_top1(exported, splits, resolution),
                     "latency_ms": latency_ms(exported, args.repeats, resolution),
                     "train_s": seconds_supernet, "train_epochs": args.supernet_epochs})
        pruned, pruned_macs = pruned_to(original, macs)
        seconds = train_plain(pruned, splits, args.finetune_epochs, lr=owner["finetune_lr"], optim=owner["optim"])
        rows.append({"route": "L1-pruned + fine-tuned (per budget)", "budget_ms": budget, "macs": pruned_macs,
                     "resolution": 28,
                     "test_top1": test_top1(pruned, splits), "latency_ms": latency_ms(pruned, args.repeats),
                     "train_s": seconds, "train_epochs": args.finetune_epochs})
    return pd.DataFrame(rows)


def _space_and_max(elastic: Path):
    from elasticnas.runs import run_space

    space = run_space(elastic)
    return space, space.max()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=None,
                        help="the original network's training (default: ResNet 12, ViT 60)")
    parser.add_argument("--model", default="resnet", choices=sorted(MODELS), help="the user's network")
    parser.add_argument("--finetune-epochs", type=int, default=8, help="each pruned network's fine-tuning")
    parser.add_argument("--supernet-epochs", type=int, default=None,
                        help="the supernet's fine-tuning (default: 3 x --finetune-epochs, the prunings' total)")
    parser.add_argument("--subnets", type=int, default=60, help="subnets measured for the predictors")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--evals", type=int, default=5000, help="predicted evaluations of the search")
    parser.add_argument("--repeats", type=int, default=30, help="timings per layer and per model")
    parser.add_argument("--out", default=None, help="work folder, resumes the supernet run (default: runs/own_MODEL)")
    parser.add_argument("--strategy", default="default", choices=sorted(STRATEGIES), help="the supernet's fine-tuning")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.finetune_epochs, args.subnets, args.trials, args.evals, args.repeats = 1, 1, 12, 2, 300, 3
        args.supernet_epochs = args.supernet_epochs or 1
    args.epochs = args.epochs or MODELS[args.model]["epochs"]
    args.supernet_epochs = args.supernet_epochs or 3 * args.finetune_epochs
    folder = results_folder(args)
    args.out = args.out or str(folder / f"own_{args.model}" if args.quick else RUNS / f"own_{args.model}")
    table = run(args)
    path = write_results(table, folder / f"own_{args.model}_{args.strategy}.csv", quick=args.quick)
    print(table.round(3).to_string(index=False))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
