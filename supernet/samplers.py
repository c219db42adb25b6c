"""Sampling strategies: which subnets each training step trains, and how.

Every strategy is registered by name, takes its knobs as a frozen options dataclass, and
draws from a generator seeded by ``(seed, step)``: the subnets of a step depend on nothing
else, so every process of a distributed run agrees and a resumed run replays them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from elasticnas.supernet.arch import Arch
from elasticnas.supernet.config import parse_config
from elasticnas.supernet.errors import unknown_name


@dataclass(frozen=True)
class SubnetTask:
    """One forward/backward of a step."""

    arch: Arch
    distill: bool = False  # learn from the step's soft targets instead of the labels
    teacher: bool = False  # this subnet's detached predictions become the step's soft targets
    with_labels: bool = False  # when distilling, also learn from the labels (loss = CE + KD)
    weight: float = 1.0  # multiplies the loss (a per-subnet learning-rate multiplier)


@dataclass
class StepContext:
    """What a strategy may look at when choosing the subnets of step ``step``."""

    step: int
    total_steps: int
    # mean loss of each architecture on the current mini-batch, without gradients
    score: Callable[[Sequence[Arch]], np.ndarray] | None = None


_STRATEGIES: dict[str, type] = {}


def register_strategy(name: str):
    def decorate(cls):
        cls.name = name
        _STRATEGIES[name] = cls
        return cls

    return decorate


def list_strategies() -> list[str]:
    return sorted(_STRATEGIES)


def create_strategy(name: str, space, options: dict[str, Any] | None = None, *, seed: int = 0):
    """Strategy ``name`` over ``space``; ``options`` are checked against its options dataclass."""
    if name not in _STRATEGIES:
        raise unknown_name("sampling strategy", name, _STRATEGIES)
    cls = _STRATEGIES[name]
    return cls(space, parse_config(cls.Options, options or {}, f"sampler.options ({name})"), seed=seed)


class Strategy:
    """Base of the strategies: seeded per-step draws and a few shared helpers."""

    name = "base"

    @dataclass(frozen=True)
    class Options:
        pass

    def __init__(self, space, options, *, seed: int = 0):
        self.space, self.options, self.seed = space, options, seed

    def rng(self, step: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, step])

    def sample(self, context: StepContext) -> list[SubnetTask]:
        raise NotImplementedError

    def phase(self, step: int, total_steps: int) -> str:
        """Name of the training phase at ``step`` (strategies with phases override it)."""
        return "main"

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "options": dataclasses.asdict(self.options)}


def _sandwich(space, rng, num_random: int, weight: float = 1.0) -> list[SubnetTask]:
    tasks = [SubnetTask(space.max(), teacher=True), SubnetTask(space.min(), distill=True, weight=weight)]
    tasks += [SubnetTask(space.sample(rng), distill=True, weight=weight) for _ in range(num_random)]
    return tasks


@register_strategy("uniform")
class Uniform(Strategy):
    """Single-path uniform sampling (Guo et al. 2020; Once-for-All's elastic phases without a teacher)."""

    @dataclass(frozen=True)
    class Options:
        num_subnets: int = 1  # random subnets per step, each from the labels

    def sample(self, context: StepContext) -> list[SubnetTask]:
        rng = self.rng(context.step)
        return [SubnetTask(self.space.sample(rng)) for _ in range(self.options.num_subnets)]


@register_strategy("sandwich")
class Sandwich(Strategy):
    """Sandwich rule with in-place distillation (BigNAS, Yu et al. 2020).

    The max subnet learns from labels; the min and ``num_random`` random subnets learn from
    its detached soft predictions (KL, or AlphaNet's adaptive alpha-divergence).
    """

    @dataclass(frozen=True)
    class Options:
        num_random: int = 2
        distill: Literal["kl", "alpha"] = "kl"

    def sample(self, context: StepContext) -> list[SubnetTask]:
        return _sandwich(self.space, self.rng(context.step), self.options.num_random)


@register_strategy("progressive_shrinking")
class ProgressiveShrinking(Strategy):
    """Once-for-All's progressive shrinking (Cai et al. 2020), all phases from one config.

    Phases in order: the full network alone; then elastic kernel size; then also elastic
    depth; then also elastic expand ratio (channels are re-ordered by importance when it
    starts). From the second phase on, subnets learn from the labels and distill from a
    frozen copy of the network trained in the first phase (its batch norm recalibrated).
    """

    PHASES = ("full", "kernel", "depth", "expand")
    TEACHER_PHASES = ("kernel", "depth", "expand")  # phases that distill from the snapshot
    REORDER_PHASES = ("expand",)  # channels are re-ordered on entering these

    @dataclass(frozen=True)
    class Options:
        phase_fractions: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)  # of all steps, per phase
        subnets_per_step: int = 2

    def phase(self, step: int, total_steps: int) -> str:
        fractions = np.cumsum(self.options.phase_fractions) / sum(self.options.phase_fractions)
        index = int(np.searchsorted(fractions, (step + 0.5) / max(total_steps, 1)))
        return self.PHASES[min(index, len(self.PHASES) - 1)]

    def sample(self, context: StepContext) -> list[SubnetTask]:
        phase = self.phase(context.step, context.total_steps)
        space, rng = self.space, self.rng(context.step)
        n = 1 if phase == "full" else self.options.subnets_per_step
        elastic = self.PHASES[1 : self.PHASES.index(phase) + 1]  # dimensions that are elastic by now

        def genes(choices, count, dimension):
            return [int(c) if float(c).is_integer() else float(c) for c in rng.choice(choices, count)] \
                if dimension in elastic else [max(choices)] * count

        tasks = []
        for _ in range(n):
            arch = Arch(int(rng.choice(space.resolutions)), genes(space.depth_choices, space.num_stages, "depth"),
                        genes(space.kernel_choices, space.num_slots, "kernel"),
                        genes(space.expand_choices, space.num_slots, "expand"))
            tasks.append(SubnetTask(arch, distill=phase != "full", with_labels=True))
        return tasks


class _Bucketed(Strategy):
    """Shared by strategies that reason about complexity: a seeded pool split into MACs buckets."""

    def __init__(self, space, options, *, seed: int = 0):
        from elasticnas.hardware.counting import count_all  # hardware builds on supernet, not the reverse

        super().__init__(space, options, seed=seed)
        pool = list(dict.fromkeys(space.sample(np.random.default_rng([seed, 1 << 30]), n=options.pool_size)))
        macs = count_all(space, pool)["macs"]
        order = np.argsort(macs, kind="stable")
        self.buckets = [[pool[i] for i in chunk] for chunk in np.array_split(order, options.buckets) if len(chunk)]


@register_strategy("complexity_aware")
class ComplexityAware(_Bucketed):
    """ElasticViT's complexity-aware sampling (Tang et al. 2023).

    Subnets of consecutive steps come from neighbouring MACs buckets, walking up and down
    the whole range, so consecutive gradients come from similar-sized subnets; the max
    subnet teaches each step by in-place distillation.
    """

    @dataclass(frozen=True)
    class Options:
        buckets: int = 8
        pool_size: int = 4000  # subnets drawn once to define the buckets
        num_subnets: int = 2  # subnets from the current bucket per step

    def bucket(self, step: int) -> int:
        period = 2 * (len(self.buckets) - 1) or 1
        position = step % period
        return position if position < len(self.buckets) else period - position

    def sample(self, context: StepContext) -> list[SubnetTask]:
        rng = self.rng(context.step)
        bucket = self.buckets[self.bucket(context.step)]
        picks = rng.integers(len(bucket), size=self.options.num_subnets)
        return [SubnetTask(self.space.max(), teacher=True)] + [SubnetTask(bucket[i], distill=True) for i in picks]


@register_strategy("performance_aware")
class PerformanceAware(_Bucketed):
    """AttentiveNAS's best-up / worst-up sampling (Wang et al. 2021).

    Each step picks a MACs target (a random bucket), draws ``candidates`` subnets of about
    that size, scores them by loss on the current mini-batch without gradients, and trains
    the best (lowest loss) or the worst, alongside the sandwich's max and min.
    """

    @dataclass(frozen=True)
    class Options:
        buckets: int = 8
        pool_size: int = 4000
        candidates: int = 3
        mode: Literal["best", "worst"] = "best"

    def sample(self, context: StepContext) -> list[SubnetTask]:
        rng = self.rng(context.step)
        bucket = self.buckets[int(rng.integers(len(self.buckets)))]
        candidates = [bucket[i] for i in rng.integers(len(bucket), size=self.options.candidates)]
        if context.score is not None and len(candidates) > 1:
            losses = context.score(candidates)
            chosen = candidates[int(np.argmin(losses) if self.options.mode == "best" else np.argmax(losses))]
        else:
            chosen = candidates[0]
        return [SubnetTask(self.space.max(), teacher=True), SubnetTask(self.space.min(), distill=True),
                SubnetTask(chosen, distill=True)]


@register_strategy("delayed_shrinking")
class DelayedShrinking(Strategy):
    """DepS, delayed epsilon-shrinking (Sukthanker et al. 2024).

    Only the full network trains during the first ``delay_fraction`` of the steps; then
    the sandwich rule with in-place distillation, the smaller subnets' loss weight (their
    learning-rate multiplier) ramping linearly from 0 to 1 over ``ramp_fraction`` of the steps.
    """

    @dataclass(frozen=True)
    class Options:
        delay_fraction: float = 0.5
        ramp_fraction: float = 0.2
        num_random: int = 2

    def phase(self, step: int, total_steps: int) -> str:
        return "full" if step < self.options.delay_fraction * total_steps else "shrinking"

    def sample(self, context: StepContext) -> list[SubnetTask]:
        if self.phase(context.step, context.total_steps) == "full":
            return [SubnetTask(self.space.max())]
        start = self.options.delay_fraction * context.total_steps
        ramp = max(self.options.ramp_fraction * context.total_steps, 1.0)
        weight = float(min(1.0, (context.step - start + 1) / ramp))
        return _sandwich(self.space, self.rng(context.step), self.options.num_random, weight)
