"""Scratch twins for the sampling-strategy benchmark: a subnet trained alone, and what its result
depends on (so that results already measured are reused only where they apply)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from strategy_noise import SEED_MARK

from elasticnas.supernet.batches import epoch_order, iterate, resize
from elasticnas.supernet.static import build_static
from elasticnas.supernet.training import build_optimizer, warmup_cosine


def scratch_recipe(config) -> str:
    """What a scratch twin's top-1 depends on besides its architecture and seed: its config's
    supernet, data, optimizer and epochs (not its strategy)."""
    return repr((config.supernet, config.data, config.optim, config.train.epochs))


def parse_label(label: str) -> tuple[str, str, str]:
    """A benchmark row's label, ``config[+recipe][@Nep][#seedS]``, as (config, recipe, seed);
    recipe and seed are "" where absent. The scratch twins train with the config alone."""
    rest, _, seed = label.partition(SEED_MARK)
    base, _, recipe = rest.split("@")[0].partition("+")
    return base, recipe, seed


def train_from_scratch(space, arch, splits, config, seed: int, device: str = "cpu") -> float:
    """Top-1 (%) on the test split of ``arch`` trained alone with the run's optimizer and epochs
    (on CUDA with mixed precision when ``config.train.amp``, as the supernet trains)."""
    torch.manual_seed(seed)
    device = torch.device(device)
    amp = config.train.amp and device.type == "cuda"
    model = build_static(space, arch).to(device)
    optim_cfg, batch = config.optim, config.data.batch_size
    optimizer = build_optimizer(model, optim_cfg)
    steps_per_epoch = len(splits.train) // batch
    total = steps_per_epoch * config.train.epochs
    warmup = int(round(optim_cfg.warmup_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, total, warmup,
                                                                                     optim_cfg.min_lr_ratio))
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    model.train()
    for epoch in range(config.train.epochs):
        order = epoch_order(len(splits.train), seed, epoch)[: steps_per_epoch * batch]
        for images, labels in iterate(splits.train, order, batch):
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", enabled=amp):
                logits = model(resize(images, arch.resolution))
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=optim_cfg.label_smoothing)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            if optim_cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), optim_cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
    model.eval()
    with torch.no_grad():
        images, labels = (t.to(device) for t in splits.test.tensors)
        return 100.0 * float((model(resize(images, arch.resolution)).argmax(1) == labels).float().mean())
